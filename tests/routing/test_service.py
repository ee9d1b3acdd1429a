"""RouteService: lookup + rules within the budget, degraded default when the CRM is slow or down,
and background recording of decisions."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from bridge.config import Config, build_config
from bridge.crm.directory import PostgresDirectory
from bridge.errors import CrmUnavailable
from bridge.models import Customer, Decision, InboundCall
from bridge.routing.decision_log import DecisionRow
from bridge.routing.rules import make_rule
from bridge.routing.service import PostgresDecisionLog, RouteService
from bridge.routing.store import RuleStore
from tests.crm.fixture_crm import ALICE, load_trace_crm

DEGRADED = Decision("support", 0, "default", None, True)


def config(budget_ms: int = 200) -> Config:
    return build_config({"agi": {"budget_ms": budget_ms}}, {}, runtime=False)


def call(caller: str | None = "+15551230001", uniqueid: str = "1700000000.1") -> InboundCall:
    return InboundCall(
        raw_caller=caller or "anonymous",
        caller=caller,
        caller_name="Alice",
        did="18005550100",
        at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        channel="PJSIP/trunk-00000001",
        uniqueid=uniqueid,
        linkedid="1700000000.0",
    )


@pytest.fixture
async def parts(pool: asyncpg.Pool[Any]) -> AsyncIterator[tuple[PostgresDirectory, RuleStore]]:
    await load_trace_crm(pool)
    directory, rules = PostgresDirectory(pool), RuleStore(pool)
    await directory.start()
    await rules.start()
    try:
        yield directory, rules
    finally:
        await rules.stop()
        await directory.stop()


async def test_lookup_blocked_by_a_table_lock_answers_degraded_within_budget(
    pool: asyncpg.Pool[Any], parts: tuple[PostgresDirectory, RuleStore]
) -> None:
    directory, rules = parts
    service = RouteService(
        directory, rules, config(budget_ms=200), decisions=PostgresDecisionLog(rules.pool)
    )
    await rules.current()  # rules cached; only the lookup can be slow
    async with pool.acquire() as locker:
        tx = locker.transaction()
        await tx.start()
        await locker.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
        try:
            async with asyncio.timeout(5):  # generous "did not hang" bound
                decision = await service.route(call())
            assert decision == DEGRADED
            # the answer came while our lock was still held: it did not wait for the lookup
            held = await locker.fetchval(
                "SELECT count(*) FROM pg_locks WHERE granted AND pid = pg_backend_pid()"
                " AND mode = 'AccessExclusiveLock' AND relation = 'customers'::regclass"
            )
            assert held == 1
        finally:
            await tx.rollback()
    assert service.degraded_count == 1
    await service.stop()
    # once the lock is gone the CRM answers again, and the pool is not left broken (a
    # generous budget here: this checks the pool, not the speed of a loaded CI machine)
    patient = RouteService(
        directory, rules, config(budget_ms=5000), decisions=PostgresDecisionLog(rules.pool)
    )
    async with asyncio.timeout(10):
        decision = await patient.route(call())
    assert (decision.queue, decision.rule, decision.degraded) == ("senior", "vip", False)
    await patient.stop()


class SleepyDirectory:
    """A directory whose query is slowed down in the database with pg_sleep."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self.pool = pool

    async def lookup(self, e164: str) -> Customer | None:
        await self.pool.execute("SELECT pg_sleep(30)")
        return None


async def test_pg_sleep_lookup_is_cancelled_in_the_background(
    pool: asyncpg.Pool[Any], parts: tuple[PostgresDirectory, RuleStore]
) -> None:
    _, rules = parts
    service = RouteService(SleepyDirectory(pool), rules, config(budget_ms=100))
    async with asyncio.timeout(5):
        decisions = await asyncio.gather(*(service.route(call()) for _ in range(3)))
    assert decisions == [DEGRADED] * 3
    async with asyncio.timeout(10):
        await service.stop()  # cancels the late lookups, which cancels their queries
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'"
            " AND state = 'active' AND datname = current_database()"  # not other test runs
        )
        == 0
    )


class FailingDirectory:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.calls = 0

    async def lookup(self, e164: str) -> Customer | None:
        self.calls += 1
        raise self.exc


@pytest.mark.parametrize("exc", [CrmUnavailable("down"), RuntimeError("bug"), TimeoutError()])
async def test_crm_errors_give_the_degraded_default(
    parts: tuple[PostgresDirectory, RuleStore], exc: Exception
) -> None:
    _, rules = parts
    directory = FailingDirectory(exc)
    service = RouteService(directory, rules, config(), decisions=PostgresDecisionLog(rules.pool))
    assert await service.route(call()) == DEGRADED
    assert directory.calls == 1
    # an unknown caller needs no lookup, so it is not degraded
    decision = await service.route(call(None))
    assert decision == Decision("support", 0, "default", None, False)
    assert directory.calls == 1
    await service.stop()


async def test_rules_unreadable_gives_the_degraded_default(
    database_url: str, parts: tuple[PostgresDirectory, RuleStore]
) -> None:
    directory, _ = parts
    from bridge.db.pool import create_pool

    closed = await create_pool(database_url, min_size=1, max_size=1)
    await closed.close()
    service = RouteService(directory, RuleStore(closed), config())
    assert await service.route(call()) == DEGRADED
    await service.stop()


async def test_record_writes_route_decisions_in_the_background(
    pool: asyncpg.Pool[Any], parts: tuple[PostgresDirectory, RuleStore]
) -> None:
    directory, rules = parts
    service = RouteService(directory, rules, config(), decisions=PostgresDecisionLog(rules.pool))
    the_call = call()
    decision = await service.route(the_call)
    await service.record(the_call, decision, "1700000000.0.wav")
    assert await service.drain(5)
    assert service.pending() == 0
    row = await pool.fetchrow("SELECT * FROM route_decisions WHERE uniqueid = '1700000000.1'")
    assert row is not None
    assert dict(row) | {"decided_at": None} == {
        "uniqueid": "1700000000.1",
        "linkedid": "1700000000.0",
        "channel": "PJSIP/trunk-00000001",
        "caller": "+15551230001",
        "caller_name": "Alice",
        "did": "18005550100",
        "customer_id": ALICE,
        "queue": "senior",
        "priority": 0,
        "rule": "vip",
        "degraded": False,
        "recording": "1700000000.0.wav",
        "decided_at": None,
    }
    await service.stop()


async def test_a_later_decision_for_the_same_uniqueid_never_overwrites_the_first(
    pool: asyncpg.Pool[Any], parts: tuple[PostgresDirectory, RuleStore]
) -> None:
    """The call record trusts this row (customer, queue, recording path): a second session
    naming the same uniqueid, a retry or a forged header, leaves it as it was."""
    directory, rules = parts
    service = RouteService(directory, rules, config(), decisions=PostgresDecisionLog(rules.pool))
    the_call = call()
    await service.record(the_call, await service.route(the_call), "1700000000.0.wav")
    assert await service.drain(5)
    forged = dataclasses.replace(call("+15559999999"), caller_name="Mallory")
    await service.record(forged, DEGRADED, "../../etc/passwd")
    assert await service.drain(5)
    rows = await pool.fetch(
        "SELECT caller, caller_name, customer_id, rule, degraded, recording FROM route_decisions"
    )
    assert [tuple(r) for r in rows] == [
        ("+15551230001", "Alice", ALICE, "vip", False, "1700000000.0.wav")
    ]
    await service.stop()


async def test_record_with_hostile_values_and_no_uniqueid_never_raises(
    pool: asyncpg.Pool[Any], parts: tuple[PostgresDirectory, RuleStore]
) -> None:
    directory, rules = parts
    service = RouteService(directory, rules, config(), decisions=PostgresDecisionLog(rules.pool))
    hostile = InboundCall(
        raw_caller="x\x00'; DROP TABLE route_decisions;--",
        caller=None,
        caller_name="\x00" + "N" * 100_000,
        did="\r\n",
        at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        channel="PJSIP/x\x00y",
        uniqueid="u\x00" + "1" * 1000,
        linkedid="l" * 1000,
    )
    await service.record(hostile, DEGRADED, "a\x00b.wav")
    await service.record(call(uniqueid=""), DEGRADED, None)  # cannot be keyed: skipped
    assert await service.drain(5)
    rows = await pool.fetch("SELECT uniqueid, caller_name, channel FROM route_decisions")
    assert len(rows) == 1
    assert len(rows[0]["uniqueid"]) == 150 and "\x00" not in rows[0]["uniqueid"]
    assert len(rows[0]["caller_name"]) == 256 and rows[0]["channel"] == "PJSIP/xy"
    await service.stop()


async def test_a_lone_surrogate_does_not_cost_its_batch(
    pool: asyncpg.Pool[Any], parts: tuple[PostgresDirectory, RuleStore]
) -> None:
    """ARI's JSON may carry `\\ud800` escapes (a lone surrogate, no UTF-8 for PostgreSQL):
    one such value must not fail the INSERT of every decision of its tick."""
    directory, rules = parts
    service = RouteService(directory, rules, config(), decisions=PostgresDecisionLog(rules.pool))
    hostile = dataclasses.replace(
        call(uniqueid="s1\ud800"),
        linkedid="l\udfff",
        caller_name="A\ud800lice",
        channel="PJSIP/\udc80",
        did="\ud800",
    )
    await service.record(call(uniqueid="s0"), DEGRADED, None)
    await service.record(hostile, Decision("q\ud800", 0, "r\udfff", None), "x\ud800.wav")
    await service.record(call(uniqueid="s2"), DEGRADED, None)
    assert await service.drain(5)
    rows = await pool.fetch("SELECT uniqueid, caller_name FROM route_decisions ORDER BY 1")
    assert [tuple(r) for r in rows] == [("s0", "Alice"), ("s1", "Alice"), ("s2", "Alice")]
    await service.stop()


class BrokenSink:
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls = 0

    async def write(self, rows: Sequence[DecisionRow]) -> None:
        self.calls += 1
        await self.release.wait()
        raise CrmUnavailable("database gone")

    async def close(self) -> None:
        return None


async def test_record_is_bounded_and_failures_are_only_logged(
    parts: tuple[PostgresDirectory, RuleStore], caplog: pytest.LogCaptureFixture
) -> None:
    directory, rules = parts
    sink = BrokenSink()
    service = RouteService(directory, rules, config(), decisions=sink, max_pending=2)
    for n in range(5):
        await service.record(call(uniqueid=f"u{n}"), DEGRADED, None)  # returns at once
    assert service.pending() == 2 and service.dropped_records == 3
    assert not await service.drain(0.05)
    sink.release.set()
    assert await service.drain(5)
    assert sink.calls == 2  # the batch of two, and its one retry
    # /healthz says so too, not only the log and the counter
    assert service.health().detail | {"pending_records": 0} == {
        "pending_records": 0,
        "degraded": 0,
        "dropped_records": 3,
        "failed_records": 2,
    }
    assert "not recorded" in caplog.text and "'u0', 'u1'" in caplog.text
    await service.stop()


class FlakySink:
    """The database drops the first attempt of every batch; the second one lands."""

    def __init__(self, inner: PostgresDecisionLog) -> None:
        self.inner = inner
        self.failures = 0
        self.batches: list[list[str]] = []

    async def write(self, rows: Sequence[DecisionRow]) -> None:
        if len(self.batches) == self.failures:
            self.failures += 1
            raise CrmUnavailable("connection reset")
        self.batches.append([row.call.uniqueid for row in rows])
        await self.inner.write(rows)

    async def close(self) -> None:
        await self.inner.close()


async def test_a_failed_batch_is_retried_and_its_decisions_land(
    pool: asyncpg.Pool[Any], parts: tuple[PostgresDirectory, RuleStore]
) -> None:
    directory, rules = parts
    sink = FlakySink(PostgresDecisionLog(pool))
    service = RouteService(directory, rules, config(), decisions=sink)
    for n in range(3):
        await service.record(call(uniqueid=f"r{n}"), DEGRADED, None)
    assert await service.drain(5)
    assert sink.failures == 1 and sink.batches == [["r0", "r1", "r2"]]  # one batch, in order
    rows = await pool.fetch("SELECT uniqueid FROM route_decisions ORDER BY uniqueid")
    assert [r["uniqueid"] for r in rows] == ["r0", "r1", "r2"]
    await service.stop()


async def test_in_one_batch_the_first_decision_for_a_uniqueid_wins(
    pool: asyncpg.Pool[Any], parts: tuple[PostgresDirectory, RuleStore]
) -> None:
    directory, rules = parts
    service = RouteService(directory, rules, config(), decisions=PostgresDecisionLog(rules.pool))
    first = Decision("senior", 5, "vip", None)
    await service.record(call(uniqueid="same"), first, "first.wav")
    await service.record(call(uniqueid="other"), DEGRADED, None)
    await service.record(call(uniqueid="same"), DEGRADED, "second.wav")  # same batch
    assert service.pending() == 3
    assert await service.drain(5)
    rows = await pool.fetch("SELECT uniqueid, queue, recording FROM route_decisions")
    assert sorted(tuple(r) for r in rows) == [
        ("other", "support", None),
        ("same", "senior", "first.wav"),
    ]
    await service.stop()


async def test_stop_flushes_every_queued_decision(
    pool: asyncpg.Pool[Any], parts: tuple[PostgresDirectory, RuleStore]
) -> None:
    directory, rules = parts
    service = RouteService(directory, rules, config(), decisions=PostgresDecisionLog(rules.pool))
    for n in range(50):
        await service.record(call(uniqueid=f"s{n}"), DEGRADED, None)
    await service.stop()  # no drain first: stop itself must write them
    assert await pool.fetchval("SELECT count(*) FROM route_decisions") == 50
    assert service.pending() == 0


async def test_rule_added_through_the_store_applies_to_the_next_call(
    pool: asyncpg.Pool[Any], parts: tuple[PostgresDirectory, RuleStore]
) -> None:
    directory, rules = parts
    service = RouteService(directory, rules, config(), decisions=PostgresDecisionLog(rules.pool))
    assert (await service.route(call())).rule == "vip"
    # another process (CLI, admin API) changes the rules: only the NOTIFY reaches us
    other = RuleStore(pool)
    await other.add_rule(make_rule("us", "americas", caller_prefix="+1"), position=1)

    async def rule_now() -> str:
        return (await service.route(call())).rule

    async with asyncio.timeout(5):
        while await rule_now() != "us":  # noqa: ASYNC110 - bounded poll for a NOTIFY's effect
            await asyncio.sleep(0.01)
    await service.stop()


async def test_a_decision_log_connection_killed_by_the_server_is_replaced_on_retry(
    pool: asyncpg.Pool[Any], parts: tuple[PostgresDirectory, RuleStore]
) -> None:
    directory, rules = parts
    sink = PostgresDecisionLog(pool)
    service = RouteService(directory, rules, config(), decisions=sink)
    await service.record(call(uniqueid="k1"), DEGRADED, None)
    assert await service.drain(5)
    held = sink._conn
    assert held is not None  # the log keeps its connection between batches
    assert await pool.fetchval("SELECT pg_terminate_backend($1)", held.get_server_pid())
    await service.record(call(uniqueid="k2"), DEGRADED, None)
    assert await service.drain(5)
    rows = await pool.fetch("SELECT uniqueid FROM route_decisions ORDER BY uniqueid")
    assert [r["uniqueid"] for r in rows] == ["k1", "k2"]
    assert service.dropped_records == 0
    await service.stop()
