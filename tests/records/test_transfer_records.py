"""Transfers land as one call_records row listing each agent once, in order, with its own
talk time; a call nobody answered points at no recording (MixMonitor left an empty file)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bridge.ami_replay import replay
from bridge.config import DEFAULT_DEVICE_PATTERN
from bridge.models import CallEnded
from bridge.records import RecordWriter
from bridge.tracker import CallTracker
from tests.records.helpers import ended_events, seed_crm, seed_decisions

SYNTHETIC = Path(__file__).parents[1] / "fixtures" / "synthetic"
T0 = datetime(2026, 1, 1, tzinfo=UTC)  # the replay clock: 10 ms per AMI frame


def frame(n: int) -> datetime:
    return T0 + timedelta(milliseconds=10 * n)


async def write(writer: RecordWriter, ended: list[CallEnded]) -> None:
    for event in ended:
        await writer.submit(event)
    await writer.wait_idle()


async def test_attended_transfer_row_is_exact(
    pool: asyncpg.Pool[Any], writer: RecordWriter
) -> None:
    async with pool.acquire() as conn:
        await seed_crm(conn)
        await seed_decisions(conn, "attended-transfer")
    await write(writer, ended_events("attended-transfer"))
    rows = await pool.fetch("SELECT * FROM call_records")
    assert len(rows) == 1
    row = dict(rows[0])
    agents = [{k: a[k] for k in ("agent", "answered_at", "talk_s")} for a in row.pop("agents")]
    # 1001 (ann) from the queue's answer to the completion, consultation included: the
    # queue's TalkTime 6; 2001 (sue) from the completion: the caller's Cdr toward it, 1 s.
    assert agents == [
        {"agent": "ann", "answered_at": frame(72).isoformat(), "talk_s": 6},
        {"agent": "sue", "answered_at": frame(200).isoformat(), "talk_s": 1},
    ]
    for volatile in ("created_at", "updated_at"):
        row.pop(volatile)
    expected = {
        "call_id": "1796179604.0",
        "caller": "+15551230002",
        "customer_id": "c-bob",
        "did": "18005550100",
        "queue": "support",
        "rule": "default",
        "started_at": frame(1),  # the caller's Newchannel
        "answered_at": frame(72),
        "ended_at": frame(258),  # the last channel of the call
        # The caller's own channel lifetime (frames 1 to 249 on the replay clock), not
        # stretched to the talk figures' 7 s as before.
        "duration_s": 2,
        "talk_s": 7,
        "outcome": "answered",
        "recording_path": "/tmp/cap-S1Se/spool/monitor/1796179604.1.wav",
        "disposition": None,
        "notes": None,
        "degraded": False,
        "inferred": [],
    }
    assert {k: row[k] for k in expected} == expected


async def test_phone_transfer_is_one_row_with_both_agents(
    pool: asyncpg.Pool[Any], writer: RecordWriter
) -> None:
    data = (SYNTHETIC / "external-attended-transfer" / "ami.log").read_bytes()
    events = replay(data, CallTracker(re.compile(DEFAULT_DEVICE_PATTERN)))
    async with pool.acquire() as conn:
        await seed_crm(conn)
    await write(writer, [e for e in events if isinstance(e, CallEnded)])
    rows = await pool.fetch("SELECT call_id, agents, talk_s, customer_id FROM call_records")
    assert len(rows) == 1  # no row for the consultation's own Linkedid
    (row,) = rows
    assert row["call_id"] == "1800000000.0" and row["customer_id"] == "c-bob"
    assert [(a["agent"], a["talk_s"]) for a in row["agents"]] == [("ann", 9), ("sue", 11)]
    assert row["talk_s"] == 20


async def test_unanswered_call_gets_no_recording_path(
    pool: asyncpg.Pool[Any], writer: RecordWriter
) -> None:
    """The decision names a recording (BRIDGE_RECORDING) and MixMonitor ran, but nobody
    answered: neither the tracker's path nor the decision's fallback is recorded."""
    async with pool.acquire() as conn:
        await seed_crm(conn)
        await seed_decisions(conn, "abandoned")
    ended = ended_events("abandoned")
    assert [e.summary.recording_path for e in ended] == [None]
    await write(writer, ended)
    row = await pool.fetchrow("SELECT outcome, recording_path, inferred FROM call_records")
    assert row["outcome"] == "abandoned"
    assert row["recording_path"] is None
    assert "recording_path" not in row["inferred"]
