"""A batch of end events is written in a constant number of round trips, and lands exactly
as the same events written one by one: every recorded trace (decisions by channel and by
linkedid, agents by device, customers by number), the same call twice in one batch, a
replay of the batch (nothing new for the CRM)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import asyncpg

from bridge.records.cdr import PbxCdr
from bridge.records.store import (
    RECORD_COLUMNS,
    store_cdrs,
    write_ended,
    write_ended_many,
)
from tests.conftest import truncate_all
from tests.records.factory import T0, make_ended
from tests.records.helpers import AMI_SCENARIOS, ended_events, seed_crm, seed_decisions


class CountingConn:
    """A connection that counts the statements sent through it."""

    def __init__(self, conn: asyncpg.Connection[Any]) -> None:
        self.conn = conn
        self.round_trips = 0

    async def fetch(self, *args: Any) -> Any:
        self.round_trips += 1
        return await self.conn.fetch(*args)

    async def execute(self, *args: Any) -> Any:
        self.round_trips += 1
        return await self.conn.execute(*args)


async def _seed(conn: asyncpg.Connection[Any]) -> None:
    await seed_crm(conn)
    for n, scenario in enumerate(AMI_SCENARIOS):
        await seed_decisions(conn, scenario, linkedid=n % 2 == 1)


async def _snapshot(pool: asyncpg.Pool[Any]) -> dict[str, Any]:
    columns = RECORD_COLUMNS.replace("inferred", "inferred::text AS inferred")
    return {
        "records": [
            dict(r) for r in await pool.fetch(f"SELECT {columns} FROM call_records ORDER BY 1")
        ],
        "channels": [
            tuple(r) for r in await pool.fetch("SELECT * FROM call_record_channels ORDER BY 1")
        ],
        "history": [
            tuple(r)
            for r in await pool.fetch(
                "SELECT customer_id, call_id, occurred_at, agent_id, summary, outcome"
                " FROM service_history ORDER BY call_id"
            )
        ],
        "outbox": await pool.fetchval("SELECT count(*) FROM call_outbox"),
    }


async def test_a_batch_lands_as_the_same_events_one_by_one_in_two_round_trips(
    pool: asyncpg.Pool[Any],
) -> None:
    events = [e for s in AMI_SCENARIOS for e in ended_events(s)]
    events += [make_ended(f"made.{n}", caller="+15551230002", device="1002") for n in range(5)]
    assert len(events) > 20

    async with pool.acquire() as conn:
        await _seed(conn)
        async with conn.transaction():
            for event in events:
                assert await write_ended(conn, event, region="US")
    one_by_one = await _snapshot(pool)

    async with pool.acquire() as conn:
        await truncate_all(conn)
        await _seed(conn)
        counting = CountingConn(conn)
        cdrs = [PbxCdr(uniqueid=e.call_id, channel="PJSIP/trunk-1") for e in events]
        async with conn.transaction():
            written = await write_ended_many(counting, events, region="US", cdrs=cdrs)  # type: ignore[arg-type]
        assert counting.round_trips == 2  # the calls' locks and look-up, the upsert and Cdrs
    assert written == {e.call_id for e in events}
    assert await pool.fetchval("SELECT count(*) FROM pbx_cdrs") == len(cdrs)
    assert await _snapshot(pool) == one_by_one


async def test_the_same_call_twice_in_a_batch_is_one_row_as_its_last_event_says(
    pool: asyncpg.Pool[Any],
) -> None:
    first = make_ended("twice.1", talk_s=10)
    last = make_ended("twice.1", talk_s=40)
    async with pool.acquire() as conn, conn.transaction():
        await seed_crm(conn)
        assert await write_ended_many(conn, [first, make_ended("other.1"), last], region="US") == {
            "twice.1",
            "other.1",
        }
    row = await pool.fetchrow("SELECT talk_s FROM call_records WHERE call_id = 'twice.1'")
    assert row["talk_s"] == 40
    assert await pool.fetchval("SELECT count(*) FROM call_records") == 2


async def test_replaying_a_batch_changes_nothing_and_queues_nothing_new(
    pool: asyncpg.Pool[Any],
) -> None:
    events = [make_ended(f"replay.{n}") for n in range(50)]
    async with pool.acquire() as conn:
        await seed_crm(conn)
        async with conn.transaction():
            await write_ended_many(conn, events, region="US")
        await conn.execute("UPDATE call_outbox SET state = 'delivered'")
        before = await _snapshot(pool)
        async with conn.transaction():
            await write_ended_many(conn, events, region="US")  # the spool replayed after a crash
    assert await _snapshot(pool) == before
    assert await pool.fetchval("SELECT count(*) FROM call_outbox WHERE state <> 'delivered'") == 0


async def test_only_missing_never_replaces_a_finished_record(pool: asyncpg.Pool[Any]) -> None:
    live = make_ended("kept.1", talk_s=30)
    rebuilt = replace(live, summary=replace(live.summary, talk_s=99))
    async with pool.acquire() as conn, conn.transaction():
        await write_ended_many(conn, [live], region="US")
        written = await write_ended_many(
            conn,
            [rebuilt, make_ended("gap.1")],
            only_missing=True,
            source="reconciled",
            region="US",
        )
    assert written == {"gap.1"}
    found = await pool.fetch("SELECT call_id, talk_s, source FROM call_records")
    rows = {r["call_id"]: r for r in found}
    assert (rows["kept.1"]["talk_s"], rows["kept.1"]["source"]) == (30, "live")
    assert rows["gap.1"]["source"] == "reconciled"


async def test_cdrs_of_a_batch_are_kept_once_even_when_resent_within_it(
    pool: asyncpg.Pool[Any],
) -> None:
    cdr = PbxCdr.from_dict(
        {
            "uniqueid": "cdr.1",
            "channel": "PJSIP/trunk-1",
            "destination_channel": "PJSIP/1001-1",
            "source": "+15551230002",
            "destination": "support",
            "start_time": T0,
            "answer_time": None,
            "end_time": T0,
            "duration_s": 3,
            "billable_s": 0,
            "disposition": "NO ANSWER",
            "last_application": "Queue",
            "last_data": "support\x00'; DROP TABLE pbx_cdrs; --",
        }
    )
    async with pool.acquire() as conn, conn.transaction():
        await store_cdrs(conn, [cdr, cdr, replace(cdr, uniqueid="cdr.2")])
        await store_cdrs(conn, [cdr])
    assert await pool.fetchval("SELECT count(*) FROM pbx_cdrs") == 2
    assert "\x00" not in await pool.fetchval("SELECT last_data FROM pbx_cdrs LIMIT 1")
