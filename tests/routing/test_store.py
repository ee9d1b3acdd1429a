"""RuleStore: positions, validation on the way in and out, cache refreshed by NOTIFY."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from bridge.errors import NotFound, ValidationError
from bridge.routing.rules import make_rule, parse_attr, parse_when
from bridge.routing.store import RuleStore


@pytest.fixture
async def store(pool: asyncpg.Pool[Any]) -> AsyncIterator[RuleStore]:
    s = RuleStore(pool)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def names(store: RuleStore) -> list[tuple[str, int]]:
    return [(r.name, r.position) for r in await store.list_rules()]


async def test_positions_append_insert_and_close_gaps(store: RuleStore) -> None:
    for name in ("a", "b", "c"):
        await store.add_rule(make_rule(name, "q"))
    assert await names(store) == [("a", 1), ("b", 2), ("c", 3)]
    added = await store.add_rule(make_rule("first", "q"), position=1)
    assert added.position == 1
    await store.add_rule(make_rule("mid", "q"), position=3)
    await store.add_rule(make_rule("far", "q"), position=99)  # past the end: appended
    assert await names(store) == [
        ("first", 1),
        ("a", 2),
        ("mid", 3),
        ("b", 4),
        ("c", 5),
        ("far", 6),
    ]
    await store.remove_rule("mid")
    await store.remove_rule("first")
    assert await names(store) == [("a", 1), ("b", 2), ("c", 3), ("far", 4)]
    with pytest.raises(NotFound):
        await store.remove_rule("mid")
    with pytest.raises(NotFound):
        await store.remove_rule("x\x00'; --")
    with pytest.raises(ValidationError) as exc:
        await store.add_rule(make_rule("a", "other"))
    assert exc.value.field == "name"
    with pytest.raises(ValidationError) as exc:
        await store.add_rule(make_rule("z", "q"), position=0)
    assert exc.value.field == "position"


async def test_rules_round_trip_through_the_database(store: RuleStore) -> None:
    rule = make_rule(
        "full",
        "senior",
        priority=7,
        tags_any="vip,gold",
        tags_all="b2b",
        unknown_caller=False,
        caller_prefix="+86",
        did="18005550100",
        when="fri-mon 22:00-06:00",
        attr="lifetime_value >= 10000",
    )
    stored = await store.add_rule(rule)
    assert stored == make_rule(
        "full",
        "senior",
        position=1,
        priority=7,
        tags_any=("vip", "gold"),
        tags_all=("b2b",),
        caller_prefix="+86",
        did="18005550100",
        when=parse_when("fri-mon 22:00-06:00"),
        attr=parse_attr("lifetime_value>=10000"),
    )
    assert await store.current() == [stored]


async def test_concurrent_adds_keep_positions_unique(store: RuleStore) -> None:
    await asyncio.gather(*(store.add_rule(make_rule(f"r{n}", "q"), position=1) for n in range(8)))
    positions = [p for _, p in await names(store)]
    assert positions == list(range(1, 9))


async def test_current_is_cached_and_refreshed_by_notify(
    pool: asyncpg.Pool[Any], store: RuleStore
) -> None:
    await store.add_rule(make_rule("vip", "senior", tags_any="vip"))
    assert [r.name for r in await store.current()] == ["vip"]
    cached = await store.current()
    assert await store.current() is cached  # no query: the same list
    # a plain SQL change by someone else arrives as NOTIFY crm_rules_changed
    await pool.execute("UPDATE routing_rules SET queue = 'platinum' WHERE name = 'vip'")
    async with asyncio.timeout(5):
        while (await store.current())[0].queue != "platinum":  # noqa: ASYNC110 - bounded poll
            await asyncio.sleep(0.01)
    await pool.execute("DELETE FROM routing_rules")
    async with asyncio.timeout(5):
        while await store.current():  # noqa: ASYNC110 - bounded poll for a NOTIFY
            await asyncio.sleep(0.01)


async def test_rule_broken_by_hand_is_skipped_not_fatal(
    pool: asyncpg.Pool[Any], store: RuleStore
) -> None:
    await store.add_rule(make_rule("good", "q"))
    await pool.execute(
        "INSERT INTO routing_rules (name, position, queue, when_spec)"
        " VALUES ('bad', 2, 'q', 'nope')"
    )
    assert [r.name for r in await store.list_rules()] == ["good"]


async def test_store_survives_listener_death(pool: asyncpg.Pool[Any], store: RuleStore) -> None:
    await store.add_rule(make_rule("a", "q1"))
    await store.current()
    generation = store.listener.generation
    await pool.fetchval("SELECT pg_terminate_backend($1)", store.listener.backend_pid)
    async with asyncio.timeout(10):
        await store.listener.wait_listening(generation)
    assert store.listener.generation > generation, "the listener reconnected"
    await pool.execute("UPDATE routing_rules SET queue = 'q2'")
    async with asyncio.timeout(5):
        while (await store.current())[0].queue != "q2":  # noqa: ASYNC110 - bounded poll
            await asyncio.sleep(0.01)
    assert [(r.name, r.queue) for r in await store.current()] == [("a", "q2")]
