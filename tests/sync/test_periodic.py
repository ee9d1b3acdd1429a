"""The periodic reconcile component inside `crm-bridge run`: it rebuilds missing calls every
`reconcile_s`, one instance at a time across instances sharing a database (advisory lock),
stops promptly even mid-run, and a failing CDR store is reported and retried, never fatal."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bridge.config import DEFAULT_DEVICE_PATTERN
from bridge.records import PbxCdr
from bridge.sync import metrics
from bridge.sync.periodic import SYNC_LOCK, Reconciler
from bridge.sync.sources import CdrBatch, CsvCdrSource
from tests.records.helpers import ended_events, seed_crm, seed_decisions
from tests.sync.test_sync import trace_cdrs

PATTERN = re.compile(DEFAULT_DEVICE_PATTERN)
WAIT = 60.0  # "did not hang" bound
SCENARIO = "vip-answered"


class Source:
    """A CDR store that can be held (a slow read), made to fail, and counts its reads."""

    description = "test CDR store"

    def __init__(self, cdrs: list[PbxCdr] | None = None) -> None:
        self.cdrs = cdrs or []
        self.reads = 0
        self.failures = 0  # the next reads that raise
        self.held = asyncio.Event()
        self.held.set()
        self.reading = asyncio.Event()  # set while a read waits on `held`

    async def read(self, since: datetime | None) -> CdrBatch:
        self.reads += 1
        if self.failures:
            self.failures -= 1
            raise OSError("CDR store unreachable")
        self.reading.set()
        await self.held.wait()
        self.reading.clear()
        return CdrBatch(cdrs=list(self.cdrs))


async def _calls_missed_while_down(pool: asyncpg.Pool[Any]) -> set[str]:
    async with pool.acquire() as conn:
        await seed_crm(conn)
        await seed_decisions(conn, SCENARIO, linkedid=True)
    return {e.call_id for e in ended_events(SCENARIO)}


def _reconciler(pool: asyncpg.Pool[Any], source: Source, period_s: float) -> Reconciler:
    return Reconciler(pool, PATTERN, period_s=period_s, source=source, region="US")


async def test_it_runs_every_period_and_rebuilds_what_the_bridge_missed(
    pool: asyncpg.Pool[Any],
) -> None:
    missed = await _calls_missed_while_down(pool)
    source = Source(trace_cdrs(SCENARIO))
    reconciler = _reconciler(pool, source, period_s=0.01)
    await reconciler.start()
    try:
        await asyncio.wait_for(reconciler.wait_runs(3), WAIT)
        assert reconciler.health().state == "up"
    finally:
        await asyncio.wait_for(reconciler.stop(), WAIT)
    assert source.reads >= 3
    rows = await pool.fetch("SELECT call_id, source FROM call_records")
    assert {r["call_id"] for r in rows} == missed
    assert {r["source"] for r in rows} == {"reconciled"}
    assert reconciler.last is not None and reconciler.last.backfilled == 0  # done already
    assert reconciler.health().state == "down"


async def test_two_instances_never_reconcile_at_once(pool: asyncpg.Pool[Any]) -> None:
    await _calls_missed_while_down(pool)
    first_source = Source(trace_cdrs(SCENARIO))
    first_source.held.clear()
    second_source = Source(trace_cdrs(SCENARIO))
    first = _reconciler(pool, first_source, period_s=3600)
    second = _reconciler(pool, second_source, period_s=0.01)
    await first.start()
    try:
        await asyncio.wait_for(first_source.reading.wait(), WAIT)  # first holds the lock
        await second.start()
        await asyncio.wait_for(second.wait_runs(3), WAIT)
        await second.stop()
        assert second_source.reads == 0 and second.last is None  # every turn skipped
        first_source.held.set()
        await asyncio.wait_for(first.wait_runs(1), WAIT)
        assert first.last is not None and first.last.backfilled == 1
        assert await second.run_once() is not None  # the lock is free again
    finally:
        await asyncio.wait_for(first.stop(), WAIT)
        await second.stop()
    assert await pool.fetchval("SELECT count(*) FROM call_records") == 1


async def test_stop_is_prompt_mid_run_and_releases_the_lock(pool: asyncpg.Pool[Any]) -> None:
    source = Source()
    source.held.clear()  # a CDR store that never answers
    reconciler = _reconciler(pool, source, period_s=3600)
    await reconciler.start()
    await asyncio.wait_for(source.reading.wait(), WAIT)
    await asyncio.wait_for(reconciler.stop(), WAIT)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", SYNC_LOCK)
        await conn.execute("SELECT pg_advisory_unlock($1)", SYNC_LOCK)
    # and between runs, asleep for an hour
    idle = _reconciler(pool, Source(), period_s=3600)
    await idle.start()
    await asyncio.wait_for(idle.wait_runs(1), WAIT)
    await asyncio.wait_for(idle.stop(), WAIT)


async def test_a_failing_cdr_store_is_reported_and_retried_not_fatal(
    pool: asyncpg.Pool[Any],
) -> None:
    missed = await _calls_missed_while_down(pool)
    source = Source(trace_cdrs(SCENARIO))
    source.failures = 2
    source.held.clear()  # the third read, the first to work, waits for the test
    errors_before = metrics.RUNS.labels("error")._value.get()
    reconciler = _reconciler(pool, source, period_s=0.01)
    await reconciler.start()
    try:
        await asyncio.wait_for(source.reading.wait(), WAIT)
        assert reconciler.runs == 2 and source.reads == 3
        health = reconciler.health()
        assert health.state == "degraded"
        assert "CDR store unreachable" in str(health.detail["error"])
        assert metrics.RUNS.labels("error")._value.get() == errors_before + 2
        source.held.set()
        await asyncio.wait_for(reconciler.wait_runs(3), WAIT)
        assert reconciler.health().state == "up"
    finally:
        await asyncio.wait_for(reconciler.stop(), WAIT)
    assert {r["call_id"] for r in await pool.fetch("SELECT call_id FROM call_records")} == missed


async def test_an_unreadable_master_csv_is_reported_not_raised(
    pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    reconciler = Reconciler(
        pool,
        PATTERN,
        period_s=3600,
        source=CsvCdrSource(tmp_path / "missing.csv", UTC),
        region="US",
    )
    await reconciler.start()
    try:
        await asyncio.wait_for(reconciler.wait_runs(1), WAIT)
    finally:
        await reconciler.stop()
    assert reconciler.last is not None
    assert reconciler.last.source_problem_count == 1
    assert "cannot read" in reconciler.last.source_problems[0]
