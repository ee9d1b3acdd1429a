"""The screen-pop wire protocol (CONTRACT "Screen-pops"), as pure functions: no sockets.

Client → hub (UTF-8 JSON text frames, at most `MAX_MESSAGE` bytes):

    {"type": "hello", "token": "<agent token>"}      first message, within the hello timeout
    {"type": "subscribe", "queue": "senior"}         supervisors and admins: follow a queue
                                                     (`east:senior`: east's, with [[pbx]])
    {"type": "unsubscribe", "queue": "senior"}
    {"type": "ping"}                                 answered {"type": "pong"}
    {"type": "status", "paused": true, "reason": "lunch"}
                                                     pause (or resume) the agent in all its
                                                     queues; answered {"type": "status",
                                                     "paused", "reason", "ok"}

Hub → client: `welcome`, `subscribed`, `unsubscribed`, `pong`, `error` ({"error", "reason"}:
the request was refused, the connection stays open), and the call messages `call.ringing`,
`call.dialing` (an agent's own call out, with the dialled number's customer),
`call.answered`, `call.retracted`, `call.transferred`, `call.ended`, each with `type`,
`call_id` (the Linkedid) and `at` (ISO-8601 time of the event), and, for supervisors
following a queue, `queue.stats` (`queue_stats_message`).

Close codes the hub uses:

    code  when
    1001  the hub is shutting down
    1003  the client sent a binary frame (the protocol is JSON text only)
    1009  a client message over MAX_MESSAGE bytes (64 KiB), closed by the websocket layer
    1011  internal error, e.g. the agent database could not be asked during hello
    4001  not authenticated: no hello within the hello timeout (5 s), the first message is
          not a valid hello, or the token is missing or wrong
    4003  the agent's token was rotated, the agent disabled, or demoted from supervisor or
          admin to agent: the page forgets what it showed
    4002  malformed message after welcome: not JSON, not an object, a field of the wrong
          type or too long, or an unknown `type`
    4008  too slow: the client's send queue ([pops] client_queue messages) was full, so it
          was dropped rather than delay anyone else
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "CLOSE_AUTH",
    "CLOSE_BINARY",
    "CLOSE_INTERNAL",
    "CLOSE_MALFORMED",
    "CLOSE_REVOKED",
    "CLOSE_SLOW",
    "CLOSE_TOO_BIG",
    "MAX_MESSAGE",
    "ClientMessage",
    "Hello",
    "Ping",
    "PopProtocolError",
    "Status",
    "Subscribe",
    "Unsubscribe",
    "encode",
    "iso",
    "parse_client_message",
    "queue_stats_message",
]

MAX_MESSAGE = 64 * 1024
CLOSE_BINARY = 1003
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_AUTH = 4001
CLOSE_MALFORMED = 4002
CLOSE_REVOKED = 4003
CLOSE_SLOW = 4008

# A queue as the wallboard names it: `support`, or `east:support` for a namespaced PBX's.
_QUEUE = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,14}[a-z0-9])?:)?[A-Za-z0-9_.-]{1,80}")
MAX_TOKEN = 512
MAX_REASON = 80
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PopProtocolError(Exception):
    """A client message breaks the protocol; close the connection with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Hello:
    token: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    queue: str


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    queue: str


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Status:
    """Pause (or resume) the agent in every queue it is a member of, with a reason."""

    paused: bool
    reason: str = ""


ClientMessage = Hello | Subscribe | Unsubscribe | Ping | Status


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_client_message(data: str | bytes) -> ClientMessage:
    """One client frame → a message, or PopProtocolError with the close code to use."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        raise PopProtocolError(CLOSE_BINARY, "binary frames are not accepted; send JSON text")
    if len(data) > MAX_MESSAGE:
        raise PopProtocolError(CLOSE_TOO_BIG, "message too big")
    try:
        value = json.loads(data, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise PopProtocolError(CLOSE_MALFORMED, "message is not JSON") from exc
    if not isinstance(value, dict):
        raise PopProtocolError(CLOSE_MALFORMED, "message must be a JSON object")
    kind = value.get("type")
    if not isinstance(kind, str):
        raise PopProtocolError(CLOSE_MALFORMED, "type: must be a string")
    if kind == "hello":
        token = value.get("token")
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN:
            raise PopProtocolError(CLOSE_AUTH, "hello needs a token")
        return Hello(token)
    if kind in ("subscribe", "unsubscribe"):
        queue = value.get("queue")
        if not isinstance(queue, str) or not _QUEUE.fullmatch(queue):
            raise PopProtocolError(
                CLOSE_MALFORMED, "queue: [pbx:] then 1-80 letters, digits, '_', '.', '-'"
            )
        return Subscribe(queue) if kind == "subscribe" else Unsubscribe(queue)
    if kind == "ping":
        return Ping()
    if kind == "status":
        return _status(value)
    raise PopProtocolError(CLOSE_MALFORMED, "type: unknown message type")


def _status(value: dict[str, Any]) -> Status:
    paused = value.get("paused")
    if not isinstance(paused, bool):
        raise PopProtocolError(CLOSE_MALFORMED, "paused: must be true or false")
    reason = value.get("reason", "")
    if reason is None:
        reason = ""
    if not isinstance(reason, str) or len(reason) > MAX_REASON or _CONTROL.search(reason):
        raise PopProtocolError(CLOSE_MALFORMED, "reason: at most 80 characters, one line")
    return Status(paused, reason.strip() if paused else "")


def queue_stats_message(stats: Any, at: datetime) -> dict[str, Any]:
    """`queue.stats` for the followers of `stats.queue` (a `bridge.wallboard.QueueStats`)."""
    message: dict[str, Any] = {"type": "queue.stats", "at": iso(at)}
    message.update(stats.as_json())
    return message


def iso(at: datetime) -> str:
    return at.isoformat()


def encode(message: dict[str, Any]) -> str:
    """Compact JSON; non-JSON values (dates, decimals) as text; never NaN."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=str)
