"""An Asterisk CDR as the bridge keeps it (`pbx_cdrs`), built from an AMI `Cdr` event.

`Cdr` carries the channel's UniqueID but no Linkedid, and its times are the PBX's local wall
clock without a zone ("2026-11-23 20:04:06"); `cdr_timezone` says which zone that is (UTC by
default, as `cdr_manager` lab configs use).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

__all__ = ["PbxCdr", "parse_cdr_time"]

MAX_FIELD = 1024


def _text(value: Any, limit: int = MAX_FIELD) -> str:
    if value is None:
        return ""
    text = str(value).replace("\x00", "")
    return text.encode("utf-8", "replace").decode("utf-8")[:limit]


def _int(value: Any) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return 0
    return max(0, min(number, 2_000_000_000))


def parse_cdr_time(value: str, zone: tzinfo = UTC) -> datetime | None:
    """`YYYY-MM-DD HH:MM:SS` (Asterisk's CDR format) as an aware datetime; None if empty/bad."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed


@dataclass(frozen=True, slots=True)
class PbxCdr:
    uniqueid: str
    channel: str = ""
    destination_channel: str = ""
    source: str = ""
    destination: str = ""
    start_time: datetime | None = None
    answer_time: datetime | None = None
    end_time: datetime | None = None
    duration_s: int = 0
    billable_s: int = 0
    disposition: str = ""
    last_application: str = ""
    last_data: str = ""
    linkedid: str = ""  # cdr_csv (newcdrcolumns) and cdr_pgsql have it; AMI Cdr does not

    @classmethod
    def from_fields(cls, fields: Any, zone: tzinfo = UTC) -> PbxCdr:
        """From the headers of an AMI `Cdr` event (UniqueID, Channel, ..., LastData): a
        mapping, or an AMI `Frame` (case-insensitive `get`)."""
        if isinstance(fields, Mapping):
            lowered = {str(k).lower(): v for k, v in fields.items()}
            raw = lowered.get
        else:
            raw = fields.get

        def g(name: str) -> str:
            return _text(raw(name.lower()) or "")

        return cls(
            uniqueid=_text(raw("uniqueid") or "", 150),
            channel=g("Channel"),
            destination_channel=g("DestinationChannel"),
            source=g("Source"),
            destination=g("Destination"),
            start_time=parse_cdr_time(g("StartTime"), zone),
            answer_time=parse_cdr_time(g("AnswerTime"), zone),
            end_time=parse_cdr_time(g("EndTime"), zone),
            duration_s=_int(raw("duration")),
            billable_s=_int(raw("billableseconds")),
            disposition=g("Disposition").upper(),
            last_application=g("LastApplication"),
            last_data=g("LastData"),
        )

    @classmethod
    def from_event(cls, event: Any, zone: tzinfo = UTC) -> PbxCdr:
        """From a decoded `bridge.pbx_events.CdrRecord`."""
        return cls(
            uniqueid=_text(event.uniqueid, 150),
            channel=_text(event.channel),
            destination_channel=_text(event.destination_channel),
            source=_text(event.source),
            destination=_text(event.destination),
            start_time=parse_cdr_time(event.start_time, zone),
            answer_time=parse_cdr_time(event.answer_time, zone),
            end_time=parse_cdr_time(event.end_time, zone),
            duration_s=_int(event.duration_s),
            billable_s=_int(event.billable_s),
            disposition=_text(event.disposition).upper(),
            last_application=_text(getattr(event, "last_application", "")),
            last_data=_text(getattr(event, "last_data", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        def iso(v: datetime | None) -> str | None:
            return v.isoformat() if v else None

        return {
            "uniqueid": self.uniqueid,
            "channel": self.channel,
            "destination_channel": self.destination_channel,
            "source": self.source,
            "destination": self.destination,
            "start_time": iso(self.start_time),
            "answer_time": iso(self.answer_time),
            "end_time": iso(self.end_time),
            "duration_s": self.duration_s,
            "billable_s": self.billable_s,
            "disposition": self.disposition,
            "last_application": self.last_application,
            "last_data": self.last_data,
            "linkedid": self.linkedid,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PbxCdr:
        def t(key: str) -> datetime | None:
            raw = data.get(key)
            if isinstance(raw, datetime):
                return raw
            return datetime.fromisoformat(raw) if isinstance(raw, str) and raw else None

        return cls(
            uniqueid=_text(data.get("uniqueid"), 150),
            channel=_text(data.get("channel")),
            destination_channel=_text(data.get("destination_channel")),
            source=_text(data.get("source")),
            destination=_text(data.get("destination")),
            start_time=t("start_time"),
            answer_time=t("answer_time"),
            end_time=t("end_time"),
            duration_s=_int(data.get("duration_s")),
            billable_s=_int(data.get("billable_s")),
            disposition=_text(data.get("disposition")).upper(),
            last_application=_text(data.get("last_application")),
            last_data=_text(data.get("last_data")),
            linkedid=_text(data.get("linkedid"), 150),
        )
