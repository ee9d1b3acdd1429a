"""The call records in the admin API, over a real aiohttp server and real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from tests.admin.api import Api

# --- calls ------------------------------------------------------------------------------


async def test_call_record_as_json(pool: asyncpg.Pool[Any], api: Api) -> None:
    started = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    await pool.execute(
        "INSERT INTO call_records (call_id, caller, customer_id, did, queue, rule, agents,"
        " started_at, answered_at, ended_at, duration_s, talk_s, outcome, recording_path,"
        " disposition, notes) VALUES ($1, '+15551230001', 'c-1', '100', 'senior', 'vip', $2,"
        " $3, $3, $3, 42, 30, 'answered', '1700000000.1.wav', 'resolved', '<b>ok</b>')",
        "1700000000.1",
        [{"agent": "2001", "answered_at": started.isoformat(), "talk_s": 30}],
        started,
    )
    status, record = await api.call("GET", "/api/calls/1700000000.1")
    assert status == 200
    assert record["call_id"] == "1700000000.1"
    assert record["agents"] == [{"agent": "2001", "answered_at": started.isoformat(), "talk_s": 30}]
    assert record["started_at"] == started.isoformat()
    assert (record["outcome"], record["disposition"], record["notes"]) == (
        "answered",
        "resolved",
        "<b>ok</b>",
    )
    for column in ("caller", "customer_id", "did", "queue", "rule", "ended_at", "duration_s",
                   "talk_s", "recording_path", "answered_at"):  # fmt: skip
        assert column in record
    status, body = await api.call("GET", "/api/calls/nope")
    assert status == 404 and body["error"] == "not_found"
