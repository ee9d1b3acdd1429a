"""Two bridges on one PBX both see a call end and both write its record (issue 18).

The race is made deterministic with the call's own lock: the first writer's transaction is
held open after its write, the second writer is started and seen waiting on the lock in
`pg_locks`, then the first commits. Both orders are played: one row, the one that observed
the whole call, with its channels, service history and a disposition filed meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from bridge.crm.agents import Agent, create_agent
from bridge.db.pool import connect
from bridge.models import CallEnded
from bridge.pops.disposition import save_disposition
from bridge.records.cdr import PbxCdr
from bridge.records.participants import write_participants
from bridge.records.store import lock_call, write_ended_many
from tests.records.factory import make_ended

CALL = "1764000000.7"
# The instance that saw the whole call, and one whose AMI link joined after it was answered.
WHOLE = make_ended(CALL, talk_s=30)
PARTIAL = make_ended(CALL, talk_s=12, inferred=("answered_at", "started_at"))


@pytest.fixture
async def instances(database_url: str) -> AsyncIterator[tuple[Any, Any]]:
    """Two connections standing for two bridges' record writers."""
    first, second = await connect(database_url), await connect(database_url)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def waiting_on_a_lock(pool: asyncpg.Pool[Any], count: int) -> None:
    """Until `count` sessions wait for an advisory lock (bounded)."""

    async def waiting() -> int:
        return int(
            await pool.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
        )

    async with asyncio.timeout(20):
        while await waiting() < count:  # noqa: ASYNC110 - a bounded poll of the server's locks
            await asyncio.sleep(0.01)


async def write(conn: Any, event: CallEnded) -> set[str]:
    async with conn.transaction():
        return await write_ended_many(conn, [event], region="US")


async def race(
    pool: asyncpg.Pool[Any], instances: tuple[Any, Any], first: CallEnded, second: CallEnded
) -> None:
    """`first` writes and holds its transaction; `second` writes meanwhile, and waits."""
    one, two = instances
    tx = one.transaction()
    await tx.start()
    try:
        await write_ended_many(one, [first], region="US")
        late = asyncio.ensure_future(write(two, second))
        await waiting_on_a_lock(pool, 1)
        assert not late.done()
    finally:
        await tx.commit()
    async with asyncio.timeout(20):
        await late


@pytest.mark.parametrize(("first", "second"), [(WHOLE, PARTIAL), (PARTIAL, WHOLE)])
async def test_the_same_call_ended_on_two_instances_is_one_row_the_whole_one(
    pool: asyncpg.Pool[Any], instances: tuple[Any, Any], first: CallEnded, second: CallEnded
) -> None:
    await create_agent(pool, "1001", "Agent 1001", "agent", "1001")
    await pool.execute("INSERT INTO customers (id, name) VALUES ('c1', 'Bob')")
    await pool.execute(
        "INSERT INTO customer_phones (e164, customer_id) VALUES ('+15551230002', 'c1')"
    )
    await race(pool, instances, first, second)
    rows = await pool.fetch("SELECT * FROM call_records WHERE call_id = $1", CALL)
    assert len(rows) == 1
    assert rows[0]["talk_s"] == 30 and list(rows[0]["inferred"]) == ["customer_id"]
    assert [a["talk_s"] for a in rows[0]["agents"]] == [30]
    history = await pool.fetch("SELECT summary FROM service_history WHERE call_id = $1", CALL)
    assert [h["summary"] for h in history] == [
        "Inbound call via queue support, answered by 1001 (30 s)"
    ]
    channels = await pool.fetch(
        "SELECT uniqueid FROM call_record_channels WHERE call_id = $1 ORDER BY 1", CALL
    )
    assert [c["uniqueid"] for c in channels] == [CALL, f"{CALL}-b"]
    queued = await pool.fetchval("SELECT count(*) FROM call_outbox WHERE call_id = $1", CALL)
    assert queued == 1


async def test_equal_observations_write_once_and_change_nothing_the_second_time(
    pool: asyncpg.Pool[Any], instances: tuple[Any, Any]
) -> None:
    await race(pool, instances, WHOLE, WHOLE)
    row = await pool.fetchrow(
        "SELECT talk_s, updated_at FROM call_records WHERE call_id = $1", CALL
    )
    assert row is not None and row["talk_s"] == 30
    assert await pool.fetchval("SELECT count(*) FROM call_records") == 1


async def test_a_disposition_filed_between_the_two_writes_is_kept(
    pool: asyncpg.Pool[Any], instances: tuple[Any, Any]
) -> None:
    """The first instance's write is held open; the agent files on the second instance's page
    (waits for the call's lock), then the late partial end comes: the filing survives both."""
    await create_agent(pool, "1001", "Agent 1001", "agent", "1001")
    agent = Agent("1001", "Agent 1001", "agent", "1001")
    one, two = instances
    tx = one.transaction()
    await tx.start()
    try:
        await write_ended_many(one, [WHOLE], region="US")
        filing = asyncio.ensure_future(
            save_disposition(pool, CALL, agent, "follow_up", "call back Monday")
        )
        await waiting_on_a_lock(pool, 1)
        late = asyncio.ensure_future(write(two, PARTIAL))
        await waiting_on_a_lock(pool, 2)
    finally:
        await tx.commit()
    async with asyncio.timeout(20):
        await asyncio.gather(filing, late)
    row = await pool.fetchrow("SELECT * FROM call_records WHERE call_id = $1", CALL)
    assert row is not None and row["talk_s"] == 30
    assert (row["disposition"], row["notes"]) == ("follow_up", "call back Monday")
    assert [(a["agent"], a["disposition"]) for a in row["agents"]] == [("1001", "follow_up")]


async def test_both_instances_recording_who_took_part_give_one_set(pool: asyncpg.Pool[Any]) -> None:
    await create_agent(pool, "1001", "Agent 1001", "agent", "1001")
    await create_agent(pool, "2001", "Senior 2001", "agent", "2001")
    seen = [(CALL, "1001", "rung"), (CALL, "1001", "answered"), (CALL, "2001", "rung")]
    await asyncio.gather(write_participants(pool, seen), write_participants(pool, seen[::-1]))
    rows = await pool.fetch(
        "SELECT agent_id, how FROM call_participants WHERE call_id = $1 ORDER BY 1, 2", CALL
    )
    assert [(r["agent_id"], r["how"]) for r in rows] == [
        ("1001", "answered"),
        ("1001", "rung"),
        ("2001", "rung"),
    ]


@pytest.mark.parametrize("in_transaction", [True, False])
async def test_a_disposition_committed_while_the_writer_waits_for_the_lock_is_in_the_record(
    pool: asyncpg.Pool[Any], instances: tuple[Any, Any], in_transaction: bool
) -> None:
    """The writer looks up without the lock, then its upsert takes the lock and checks the
    look-up still holds (sql/120_call_records_lookup.sql): a filing committed while it waited
    makes it look up again under the lock, so the filing is in the record. The record
    writer calls it outside a transaction, reconciliation inside one."""
    await create_agent(pool, "1001", "Agent 1001", "agent", "1001")
    filer, writer = instances
    tx = filer.transaction()
    await tx.start()
    try:
        await lock_call(filer, CALL)
        await filer.execute(
            "INSERT INTO call_dispositions (call_id, agent_id, disposition, notes, filed_by)"
            " VALUES ($1, '1001', 'complaint', 'billing', '1001')",
            CALL,
        )
        late = asyncio.ensure_future(
            write(writer, WHOLE)
            if in_transaction
            else write_ended_many(writer, [WHOLE], region="US")
        )
        await waiting_on_a_lock(pool, 1)
        assert not late.done()
    finally:
        await tx.commit()
    async with asyncio.timeout(20):
        assert await late == {CALL}
    row = await pool.fetchrow("SELECT * FROM call_records WHERE call_id = $1", CALL)
    assert row is not None
    assert (row["disposition"], row["notes"]) == ("complaint", "billing")
    assert [(a["agent"], a["disposition"]) for a in row["agents"]] == [("1001", "complaint")]


async def test_reconciling_with_cdrs_in_the_batch_never_replaces_a_whole_record(
    pool: asyncpg.Pool[Any], instances: tuple[Any, Any]
) -> None:
    """`only_missing` (reconcile) and the Cdrs written in the same statement: a finished
    record stays, the Cdrs are kept, a re-sent Cdr is ignored."""
    one, _ = instances
    cdr = PbxCdr(uniqueid=CALL, channel="PJSIP/trunk-1", start_time=WHOLE.summary.started_at)
    async with one.transaction():
        assert await write_ended_many(one, [WHOLE], region="US", cdrs=[cdr]) == {CALL}
    async with one.transaction():
        written = await write_ended_many(
            one, [PARTIAL], region="US", only_missing=True, source="reconciled", cdrs=[cdr]
        )
    assert written == set()
    assert await pool.fetchval("SELECT talk_s FROM call_records") == 30
    assert await pool.fetchval("SELECT count(*) FROM pbx_cdrs") == 1
