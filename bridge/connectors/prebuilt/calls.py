"""Pure helpers every vendor module shares: a call record summarised, text made safe.

`CallSummary.of(record)` reads the CONTRACT call-record JSON the outbox hands over, with
wrong types turned into safe defaults; each vendor module turns it into its own fields.
`marker(call_id)` is the text a vendor record carries so a second delivery of the same call
(the outbox delivers at least once, and again after a disposition) finds and updates the
first instead of adding another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["CallSummary", "clean", "marker"]

MAX_NOTES = 4000


def clean(value: Any, limit: int = 300) -> str:
    """Text without control characters (newlines kept for notes), at most `limit` long."""
    if value is None or isinstance(value, bool):
        return ""
    if not isinstance(value, str | int | float):
        return ""
    text = str(value)
    return "".join(c for c in text if c.isprintable() or c in "\n\t")[:limit]


def marker(call_id: str) -> str:
    return f"crm-bridge call {clean(call_id, 128)}"


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _seconds(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return 0
    return max(0, min(int(value), 10**7))


@dataclass(frozen=True, slots=True)
class CallSummary:
    call_id: str
    caller: str
    customer_id: str
    inbound: bool
    started_at: datetime
    duration_s: int
    talk_s: int
    outcome: str  # answered | abandoned | unanswered
    disposition: str
    notes: str
    recording: str
    agents: tuple[str, ...]
    queue: str

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> CallSummary:
        agents = record.get("agents")
        names = tuple(
            clean(a.get("agent"), 64)
            for a in (agents if isinstance(agents, list) else [])
            if isinstance(a, dict) and a.get("agent")
        )
        started = _when(record.get("started_at")) or datetime.now(UTC)
        return cls(
            call_id=clean(record.get("call_id"), 128),
            caller=clean(record.get("caller"), 64),
            customer_id=clean(record.get("customer_id"), 128),
            inbound=record.get("direction") != "outbound",
            started_at=started.astimezone(UTC),
            duration_s=_seconds(record.get("duration_s")),
            talk_s=_seconds(record.get("talk_s")),
            outcome=clean(record.get("outcome"), 20) or "answered",
            disposition=clean(record.get("disposition"), 40),
            notes=clean(record.get("notes"), MAX_NOTES),
            recording=clean(record.get("recording_path"), 1000),
            agents=names,
            queue=clean(record.get("queue"), 80),
        )

    @property
    def title(self) -> str:
        return marker(self.call_id)

    @property
    def recording_url(self) -> str:
        """Only a URL is sent as one; a file name on the PBX goes in the description."""
        return self.recording if self.recording.startswith(("https://", "http://")) else ""

    def description(self) -> str:
        lines = [self.title]
        lines.append(f"{'Inbound' if self.inbound else 'Outbound'} call, {self.outcome}")
        if self.queue:
            lines.append(f"Queue: {self.queue}")
        if self.agents:
            lines.append("Agents: " + ", ".join(self.agents))
        lines.append(f"Talk time: {self.talk_s} s of {self.duration_s} s")
        if self.disposition:
            lines.append(f"Disposition: {self.disposition}")
        if self.recording and not self.recording_url:
            lines.append(f"Recording: {self.recording}")
        if self.notes:
            lines.append("")
            lines.append(self.notes)
        return "\n".join(lines)
