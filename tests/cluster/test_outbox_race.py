"""Two bridges' outbox workers on one database never deliver the same record twice
(issue 18): a claim is `FOR UPDATE SKIP LOCKED` plus a lease written in the same statement."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bridge.db.pool import connect, create_pool
from bridge.records import RecordWriter, Spool
from bridge.records.outbox import _CLAIM, OutboxWorker
from tests.records.factory import make_ended


class Crm:
    """Counts each record it is given; holds posts while `gate` is closed."""

    def __init__(self) -> None:
        self.posts: Counter[str] = Counter()
        self.gate = asyncio.Event()
        self.gate.set()
        self.arrived = asyncio.Condition()

    async def post_record(self, record: dict[str, Any]) -> None:
        async with self.arrived:
            self.posts[record["call_id"]] += 1
            self.arrived.notify_all()
        await self.gate.wait()

    async def wait_posts(self, count: int) -> None:
        async with asyncio.timeout(20), self.arrived:
            await self.arrived.wait_for(lambda: sum(self.posts.values()) >= count)


@pytest.fixture
async def second_pool(database_url: str) -> AsyncIterator[asyncpg.Pool[Any]]:
    """The other instance's own pool."""
    other = await create_pool(database_url, min_size=1, max_size=2)
    try:
        yield other
    finally:
        await other.close()


async def write_calls(pool: asyncpg.Pool[Any], tmp_path: Path, count: int) -> list[str]:
    writer = RecordWriter(pool, Spool(tmp_path / "spool"), region="US")
    await writer.start()
    try:
        for i in range(count):
            await writer.submit(make_ended(f"1764000000.{i}"))
        await writer.wait_idle()
    finally:
        await writer.stop()
    return [f"1764000000.{i}" for i in range(count)]


async def test_a_claim_in_flight_is_not_claimed_by_the_other_instance(
    pool: asyncpg.Pool[Any], second_pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    calls = await write_calls(pool, tmp_path, 6)
    crm = Crm()
    crm.gate.clear()
    first = OutboxWorker(pool, crm, batch=3)  # type: ignore[arg-type]
    other = OutboxWorker(second_pool, crm, batch=10)  # type: ignore[arg-type]
    held = asyncio.ensure_future(first.run_once())
    try:
        await crm.wait_posts(3)  # the first instance is delivering its three
        claimed = asyncio.ensure_future(other.run_once())
        await crm.wait_posts(6)
        assert not held.done()
    finally:
        crm.gate.set()
    async with asyncio.timeout(20):
        assert await held == 3 and await claimed == 3
    assert crm.posts == Counter(calls)
    assert await pool.fetchval("SELECT count(*) FROM call_outbox WHERE state = 'delivered'") == 6


async def test_rows_locked_by_a_claim_not_yet_committed_are_skipped_not_waited_for(
    pool: asyncpg.Pool[Any], database_url: str, tmp_path: Path
) -> None:
    calls = await write_calls(pool, tmp_path, 4)
    crm = Crm()
    other = OutboxWorker(pool, crm, batch=10)  # type: ignore[arg-type]
    claiming = await connect(database_url)
    try:
        tx = claiming.transaction()
        await tx.start()
        mine = {r["call_id"] for r in await claiming.fetch(_CLAIM, 2, 60.0)}
        async with asyncio.timeout(20):  # would wait for the open claim without SKIP LOCKED
            assert await other.run_once() == 2
        await tx.rollback()
    finally:
        await claiming.close()
    assert set(crm.posts) == set(calls) - mine and len(mine) == 2


async def test_two_instances_draining_together_deliver_each_record_once(
    pool: asyncpg.Pool[Any], second_pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    calls = await write_calls(pool, tmp_path, 60)
    crm = Crm()
    workers = [
        OutboxWorker(p, crm, batch=7)  # type: ignore[arg-type]
        for p in (pool, second_pool)
    ]
    async with asyncio.timeout(60):
        await asyncio.gather(*(w.drain() for w in workers))
    assert crm.posts == Counter(calls)
    assert sum(w.delivered for w in workers) == 60
