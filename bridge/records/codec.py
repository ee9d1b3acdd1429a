"""CallEnded <-> JSON, for the spool. Pure functions, no I/O.

The spool must survive any text the PBX sent (NUL, CR/LF, quotes, lone surrogates from
invalid UTF-8 that was decoded with `surrogateescape`), so strings go through `json.dumps`
with `ensure_ascii=True`: one spool line never contains a raw newline or a non-ASCII byte.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from bridge.errors import ValidationError
from bridge.models import AgentLeg, CallEnded, CallSummary

__all__ = ["decode_ended", "encode_ended", "ended_to_dict"]

_OUTCOMES = {"answered", "abandoned", "unanswered"}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def ended_to_dict(event: CallEnded) -> dict[str, Any]:
    s = event.summary
    return {
        "call_id": event.call_id,
        "at": _iso(event.at),
        "summary": {
            "call_id": s.call_id,
            "caller": s.caller,
            "caller_name": s.caller_name,
            "did": s.did,
            "queue": s.queue,
            "started_at": _iso(s.started_at),
            "answered_at": _iso(s.answered_at),
            "ended_at": _iso(s.ended_at),
            "duration_s": s.duration_s,
            "talk_s": s.talk_s,
            "outcome": s.outcome,
            "agents": [
                {"device": a.device, "answered_at": _iso(a.answered_at), "talk_s": a.talk_s}
                for a in s.agents
            ],
            "recording_path": s.recording_path,
            "uniqueids": list(s.uniqueids),
            "inferred": list(s.inferred),
            "direction": s.direction,
        },
    }


def encode_ended(event: CallEnded) -> str:
    """One JSON line (no newline inside) for `event`."""
    return json.dumps(ended_to_dict(event), ensure_ascii=True, separators=(",", ":"))


def _time(data: dict[str, Any], key: str, *, optional: bool = False) -> datetime | None:
    raw = data.get(key)
    if raw is None and optional:
        return None
    if not isinstance(raw, str):
        raise ValidationError(key, "expected an ISO time")
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ValidationError(key, f"not an ISO time: {raw!r}") from exc
    if value.tzinfo is None:
        raise ValidationError(key, "time without a zone")
    return value


def _str(data: dict[str, Any], key: str, *, optional: bool = False) -> str | None:
    raw = data.get(key)
    if raw is None and optional:
        return None
    if not isinstance(raw, str):
        raise ValidationError(key, "expected text")
    return raw


def _int(data: dict[str, Any], key: str) -> int:
    raw = data.get(key)
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise ValidationError(key, "expected an integer")
    return raw


def _direction(value: Any) -> Literal["inbound", "outbound", "internal"]:
    """Spooled before directions existed, or not one we know: inbound."""
    if value == "outbound":
        return "outbound"
    if value == "internal":
        return "internal"
    return "inbound"


def decode_ended(data: Any) -> CallEnded:
    """Rebuild a CallEnded from `ended_to_dict` output; ValidationError if malformed."""
    if not isinstance(data, dict) or not isinstance(data.get("summary"), dict):
        raise ValidationError("summary", "missing")
    s = data["summary"]
    outcome = _str(s, "outcome")
    if outcome not in _OUTCOMES:
        raise ValidationError("outcome", f"unknown outcome {outcome!r}")
    agents_raw = s.get("agents")
    if not isinstance(agents_raw, list):
        raise ValidationError("agents", "expected a list")
    agents = []
    for item in agents_raw:
        if not isinstance(item, dict):
            raise ValidationError("agents", "expected objects")
        answered = _time(item, "answered_at")
        assert answered is not None
        agents.append(AgentLeg(_str(item, "device") or "", answered, _int(item, "talk_s")))
    for key in ("uniqueids", "inferred"):
        if not isinstance(s.get(key, []), list) or not all(isinstance(x, str) for x in s[key]):
            raise ValidationError(key, "expected a list of text")
    started = _time(s, "started_at")
    ended = _time(s, "ended_at")
    at = _time(data, "at")
    assert started is not None and ended is not None and at is not None
    summary = CallSummary(
        call_id=_str(s, "call_id") or "",
        caller=_str(s, "caller") or "",
        caller_name=_str(s, "caller_name") or "",
        did=_str(s, "did") or "",
        queue=_str(s, "queue", optional=True),
        started_at=started,
        answered_at=_time(s, "answered_at", optional=True),
        ended_at=ended,
        duration_s=_int(s, "duration_s"),
        talk_s=_int(s, "talk_s"),
        outcome=outcome,  # type: ignore[arg-type]
        agents=tuple(agents),
        recording_path=_str(s, "recording_path", optional=True),
        uniqueids=tuple(s.get("uniqueids", [])),
        inferred=tuple(s.get("inferred", [])),
        direction=_direction(s.get("direction")),
    )
    call_id = _str(data, "call_id") or ""
    if not call_id or call_id != summary.call_id:
        raise ValidationError("call_id", "missing or not the summary's")
    return CallEnded(call_id, at, summary)
