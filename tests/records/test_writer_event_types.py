"""The writer keeps the decoded `CdrRecord` type itself, not anything named like it."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge.pbx_events import CdrRecord
from bridge.records import RecordWriter, Spool

AT = datetime(2026, 1, 1, tzinfo=UTC)
CDR = CdrRecord(
    AT,
    uniqueid="1795464246.0",
    channel="PJSIP/trunk-00000001",
    destination_channel="Local/2001@phones-00000001;1",
    source="+15551230001",
    destination="support",
    disposition="ANSWERED",
    billable_s=2,
    duration_s=9,
    start_time="2026-01-01 00:00:00",
    answer_time="2026-01-01 00:00:07",
    end_time="2026-01-01 00:00:09",
)


def lookalike() -> Any:
    """Same name, same fields, another type: what a string comparison let through."""
    names = [f.name for f in fields(CdrRecord)]
    cls: Any = dataclass(frozen=True)(
        type("CdrRecord", (), {"__annotations__": dict.fromkeys(names, "Any")})
    )
    return cls(**{name: getattr(CDR, name) for name in names})


async def test_only_the_real_cdr_type_is_spooled(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.open()
    writer = RecordWriter(None, spool, region="US")  # type: ignore[arg-type]  # never started: no database
    try:
        fake = lookalike()
        assert type(fake).__name__ == "CdrRecord" and not isinstance(fake, CdrRecord)
        await writer.on_events([fake])
        await writer.on_event(fake)
        assert writer.pending == 0
        await writer.on_events([fake, CDR])
        assert writer.pending == 1
        await writer.on_event(CDR)
        assert writer.pending == 2
    finally:
        spool.close()
