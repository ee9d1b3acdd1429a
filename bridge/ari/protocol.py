"""ARI (Asterisk REST Interface) event and reply decoding, sans I/O.

Text in, small frozen dataclasses out; nothing here touches a socket, so the live websocket
and trace replay share this code. Asterisk sends one JSON object per websocket text message
(`/ari/events?app=<app>`); every event carries `type`, and channel events a `channel` object
(the `Channel` model of the ARI swagger: `id`, `name`, `state`, `caller{name,number}`,
`dialplan{context,exten,priority,app_name,app_data}`, ...).

Anything malformed (not JSON, truncated, not an object, a required field missing or of the
wrong type, oversized) raises `AriProtocolError`; the caller logs it and keeps reading. Event
types we do not act on decode to `OtherEvent` rather than failing, since Asterisk adds types
over versions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.errors import AriProtocolError

__all__ = [
    "MAX_EVENT_CHARS",
    "MAX_ID_CHARS",
    "ApplicationReplaced",
    "AriChannel",
    "AriEvent",
    "ChannelDestroyed",
    "ChannelVarset",
    "OtherEvent",
    "StasisEnd",
    "StasisStart",
    "decode_channel",
    "decode_channel_list",
    "decode_event",
    "decode_variable_reply",
    "in_app",
]

MAX_EVENT_CHARS = 1024 * 1024  # one ARI event; real ones are ~1 KB
MAX_ID_CHARS = 256  # channel ids are `<epoch>.<n>` or caller-chosen ids up to this size
MAX_TEXT_CHARS = 4096  # names, numbers, dialplan fields


@dataclass(frozen=True, slots=True)
class AriChannel:
    id: str
    name: str = ""
    state: str = ""
    caller_number: str = ""
    caller_name: str = ""
    context: str = ""
    exten: str = ""
    app_name: str = ""
    app_data: str = ""
    linkedid: str = ""  # only present in some Asterisk versions; else ask CHANNEL(linkedid)


@dataclass(frozen=True, slots=True)
class StasisStart:
    application: str
    channel: AriChannel
    args: tuple[str, ...] = ()
    timestamp: str = ""


@dataclass(frozen=True, slots=True)
class StasisEnd:
    application: str
    channel: AriChannel
    timestamp: str = ""


@dataclass(frozen=True, slots=True)
class ChannelDestroyed:
    application: str
    channel: AriChannel
    cause: int = 0
    cause_txt: str = ""
    timestamp: str = ""


@dataclass(frozen=True, slots=True)
class ChannelVarset:
    application: str
    variable: str
    value: str
    channel: AriChannel | None = None  # absent for global variables
    timestamp: str = ""


@dataclass(frozen=True, slots=True)
class ApplicationReplaced:
    """Another websocket subscribed to our app name; Asterisk now sends its events there."""

    application: str
    timestamp: str = ""


@dataclass(frozen=True, slots=True)
class OtherEvent:
    type: str
    application: str = ""
    timestamp: str = ""


AriEvent = (
    StasisStart | StasisEnd | ChannelDestroyed | ChannelVarset | ApplicationReplaced | OtherEvent
)


def _text(
    obj: Mapping[str, Any],
    key: str,
    *,
    required: bool = False,
    limit: int = MAX_TEXT_CHARS,
    strict: bool = False,
) -> str:
    """A string field; longer than `limit` is cut there, or an error when `strict`.

    Descriptive text (names, numbers) is cut rather than refused: a caller with an absurd
    caller ID must still be routed, not left parked because its event was rejected.
    """
    value = obj.get(key)
    if value is None:
        if required:
            raise AriProtocolError(f"ARI message lacks {key!r}")
        return ""
    if not isinstance(value, str):
        raise AriProtocolError(f"ARI field {key!r} is not a string")
    if len(value) > limit:
        if strict:
            raise AriProtocolError(f"ARI field {key!r} is longer than {limit} characters")
        return value[:limit]
    return value


def _object(obj: Mapping[str, Any], key: str, *, required: bool = False) -> Mapping[str, Any]:
    value = obj.get(key)
    if value is None:
        if required:
            raise AriProtocolError(f"ARI message lacks {key!r}")
        return {}
    if not isinstance(value, dict):
        raise AriProtocolError(f"ARI field {key!r} is not an object")
    return value


def decode_channel(obj: Any) -> AriChannel:
    """An ARI `Channel` object; only `id` is required."""
    if not isinstance(obj, dict):
        raise AriProtocolError("ARI channel is not an object")
    channel_id = _text(obj, "id", required=True, limit=MAX_ID_CHARS, strict=True)
    if not channel_id:
        raise AriProtocolError("ARI channel id is empty")
    caller = _object(obj, "caller")
    dialplan = _object(obj, "dialplan")
    return AriChannel(
        id=channel_id,
        name=_text(obj, "name"),
        state=_text(obj, "state"),
        caller_number=_text(caller, "number"),
        caller_name=_text(caller, "name"),
        context=_text(dialplan, "context"),
        exten=_text(dialplan, "exten"),
        app_name=_text(dialplan, "app_name"),
        app_data=_text(dialplan, "app_data"),
        linkedid=_text(obj, "linkedid", limit=MAX_ID_CHARS, strict=True),
    )


def _load(text: str | bytes) -> Any:
    if len(text) > MAX_EVENT_CHARS:
        raise AriProtocolError(f"ARI message larger than {MAX_EVENT_CHARS} characters")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AriProtocolError(f"ARI message is not UTF-8: {exc}") from exc
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise AriProtocolError(f"ARI message is not JSON: {exc}") from exc


def decode_event(text: str | bytes) -> AriEvent:
    """One websocket message → one event, or `AriProtocolError`."""
    obj = _load(text)
    if not isinstance(obj, dict):
        raise AriProtocolError("ARI event is not a JSON object")
    kind = _text(obj, "type", required=True, limit=128, strict=True)
    application = _text(obj, "application", limit=MAX_ID_CHARS, strict=True)
    timestamp = _text(obj, "timestamp", limit=128)
    if kind == "StasisStart":
        raw_args = obj.get("args", [])
        if not isinstance(raw_args, list) or not all(isinstance(a, str) for a in raw_args):
            raise AriProtocolError("StasisStart args is not a list of strings")
        return StasisStart(
            application=application,
            channel=decode_channel(obj.get("channel")),
            args=tuple(raw_args),
            timestamp=timestamp,
        )
    if kind == "StasisEnd":
        return StasisEnd(application, decode_channel(obj.get("channel")), timestamp)
    if kind == "ChannelDestroyed":
        cause = obj.get("cause", 0)
        if not isinstance(cause, int) or isinstance(cause, bool):
            raise AriProtocolError("ChannelDestroyed cause is not an integer")
        return ChannelDestroyed(
            application,
            decode_channel(obj.get("channel")),
            cause,
            _text(obj, "cause_txt"),
            timestamp,
        )
    if kind == "ChannelVarset":
        channel = obj.get("channel")
        return ChannelVarset(
            application,
            _text(obj, "variable", required=True),
            _text(obj, "value"),
            None if channel is None else decode_channel(channel),
            timestamp,
        )
    if kind == "ApplicationReplaced":
        return ApplicationReplaced(application, timestamp)
    return OtherEvent(kind, application, timestamp)


def decode_channel_list(text: str | bytes) -> tuple[list[AriChannel], int]:
    """The body of `GET /channels`: the channels, and how many malformed entries were skipped.

    One odd channel must not hide the others from a resync, so entries are judged one by one.
    """
    obj = _load(text)
    if not isinstance(obj, list):
        raise AriProtocolError("GET /channels did not return a JSON list")
    channels: list[AriChannel] = []
    skipped = 0
    for item in obj:
        try:
            channels.append(decode_channel(item))
        except AriProtocolError:
            skipped += 1
    return channels, skipped


def decode_variable_reply(text: str | bytes) -> str:
    """The body of `GET /channels/{id}/variable`: `{"value": "..."}`."""
    obj = _load(text)
    if not isinstance(obj, dict):
        raise AriProtocolError("variable reply is not a JSON object")
    return _text(obj, "value", required=True)


def in_app(channel: AriChannel, app: str) -> bool:
    """Whether the channel sits in `Stasis(<app>)` with no extra arguments.

    `app_data` is the raw argument string of the dialplan application (`crm-bridge` or
    `crm-bridge,arg1`). Only argument-less entries are inbound calls for the router; a prefix
    match alone would also claim `crm-bridge2`.
    """
    return channel.app_name.lower() == "stasis" and channel.app_data.strip() == app
