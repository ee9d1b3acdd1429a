"""Cards by customer id: kept while no change notice names the customer, dropped by one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from bridge.crm.directory import PostgresDirectory
from bridge.crm.merge import merge
from bridge.pops.card import CustomerCard
from bridge.pops.card_cache import CardCache
from bridge.pops.sources import PostgresCards
from tests.crm.fixture_crm import ALICE, BOB, load_trace_crm


class Notices:
    """Waits for the directory's change notices (no polling, no sleep)."""

    def __init__(self, directory: PostgresDirectory) -> None:
        self.heard: list[str | None] = []
        self._changed = asyncio.Event()
        directory.on_change(self._on_change)

    def _on_change(self, customer_id: str | None) -> None:
        self.heard.append(customer_id)
        self._changed.set()

    async def wait_for(self, customer_id: str) -> None:
        """Until a notice names `customer_id` (or drops everything); forgets those heard."""
        async with asyncio.timeout(5):
            while customer_id not in self.heard and None not in self.heard:
                self._changed.clear()
                await self._changed.wait()
        self.heard.clear()


@pytest.fixture
async def cards(pool: asyncpg.Pool[Any]) -> AsyncIterator[tuple[PostgresCards, Notices]]:
    await load_trace_crm(pool)
    directory = PostgresDirectory(pool)
    notices = Notices(directory)
    found = PostgresCards(pool, directory, "US")
    await directory.start()
    assert directory.listener.listening
    notices.heard.clear()  # the (re)listen drop at start
    try:
        yield found, notices
    finally:
        await found.cache.close()
        await directory.stop()


async def silently(pool: asyncpg.Pool[Any], sql: str, *args: Any) -> None:
    """Change the CRM without firing triggers (no NOTIFY): shows what the cache serves."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(sql, *args)


async def test_a_card_is_loaded_once_and_kept(pool, cards) -> None:
    found, _ = cards
    card = await found.cache.get(ALICE)
    assert card is not None and card.name == "Alice Chen"
    await silently(pool, "UPDATE customers SET name = 'Not Seen' WHERE id = $1", ALICE)
    assert await found.cache.get(ALICE) is card


Change = Callable[["asyncpg.Pool[Any]"], Awaitable[Any]]
CHANGES: dict[str, tuple[Change, Callable[[CustomerCard | None], bool]]] = {
    "customer edit": (
        lambda p: p.execute("UPDATE customers SET name = 'Alice Wong' WHERE id = $1", ALICE),
        lambda c: c is not None and c.name == "Alice Wong",
    ),
    "tag": (
        lambda p: p.execute("INSERT INTO customer_tags VALUES ($1, 'gold')", ALICE),
        lambda c: c is not None and "gold" in c.tags,
    ),
    "owner": (
        lambda p: p.execute("INSERT INTO customer_owners VALUES ($1, '2002')", ALICE),
        lambda c: c is not None and c.owner == "2002",
    ),
    "phone": (
        lambda p: p.execute("INSERT INTO customer_phones VALUES ('+15551239999', $1)", ALICE),
        lambda c: c is not None,  # a phone is not on the card; the notice still drops it
    ),
    "order": (
        lambda p: p.execute(
            "INSERT INTO orders (customer_id, reference, product, amount)"
            " VALUES ($1, 'o-9', 'Phone', 99)",
            ALICE,
        ),
        lambda c: c is not None and [o["product"] for o in c.orders] == ["Phone"],
    ),
    "contract": (
        lambda p: p.execute(
            "INSERT INTO contracts (customer_id, kind, reference) VALUES ($1, 'loan', 'c-1')",
            ALICE,
        ),
        lambda c: c is not None and [k["reference"] for k in c.contracts] == ["c-1"],
    ),
    "marketing": (
        lambda p: p.execute(
            "INSERT INTO marketing_events (customer_id, campaign, channel)"
            " VALUES ($1, 'spring', 'email')",
            ALICE,
        ),
        lambda c: c is not None and [m["campaign"] for m in c.marketing] == ["spring"],
    ),
    "service history": (
        lambda p: p.execute(
            "INSERT INTO service_history (customer_id, summary, outcome, disposition)"
            " VALUES ($1, 'broken screen', 'answered', 'resolved')",
            ALICE,
        ),
        lambda c: c is not None and c.last_outcome is not None,
    ),
    "merged away": (
        lambda p: merge(p, BOB, [ALICE]),
        lambda c: c is None,
    ),
    "deleted": (
        lambda p: p.execute("DELETE FROM customers WHERE id = $1", ALICE),
        lambda c: c is None,
    ),
}


@pytest.mark.parametrize("kind", list(CHANGES))
async def test_after_its_change_notice_the_next_get_shows_the_new_card(
    pool, cards, kind: str
) -> None:
    found, notices = cards
    change, shows_new = CHANGES[kind]
    before = await found.cache.get(ALICE)
    assert (before is not None and not shows_new(before)) or kind == "phone"
    await change(pool)
    await notices.wait_for(ALICE)
    assert shows_new(await found.cache.get(ALICE))
    if kind == "phone":
        assert len(found.cache) == 1  # reloaded once, kept again


async def test_a_merge_drops_the_survivors_card_too(pool, cards) -> None:
    found, notices = cards
    assert (await found.cache.get(BOB)).orders == ()  # type: ignore[union-attr]
    await pool.execute(
        "INSERT INTO orders (customer_id, reference, product, amount)"
        " VALUES ($1, 'o-1', 'Phone', 99)",
        ALICE,
    )
    await notices.wait_for(ALICE)
    await merge(pool, BOB, [ALICE])
    await notices.wait_for(BOB)
    survivor = await found.cache.get(BOB)
    assert survivor is not None and survivor.orders[0]["product"] == "Phone"


async def test_a_load_that_a_notice_overtook_is_not_kept() -> None:
    release, started = asyncio.Event(), asyncio.Event()
    loads: list[str] = []

    async def load(customer_id: str) -> CustomerCard | None:
        loads.append(customer_id)
        started.set()
        await release.wait()
        return CustomerCard(customer_id, f"name {len(loads)}")

    cache = CardCache(load, lambda: True)
    first = asyncio.ensure_future(cache.get(ALICE))
    await started.wait()
    assert loads == [ALICE]
    cache.invalidate(ALICE)  # the notice arrives while the old card is on its way
    second = asyncio.ensure_future(cache.get(ALICE))  # asked after the notice: a new load
    release.set()
    old, new = await first, await second
    assert old is not None and new is not None
    assert (old.name, new.name) == ("name 1", "name 2")
    assert loads == [ALICE, ALICE]
    assert await cache.get(ALICE) is new  # only the load started after the notice was kept


async def test_a_drop_everything_notice_overtakes_every_load() -> None:
    release, started = asyncio.Event(), asyncio.Event()

    async def load(customer_id: str) -> CustomerCard | None:
        started.set()
        await release.wait()
        return CustomerCard(customer_id, "old")

    cache = CardCache(load, lambda: True)
    waiting = asyncio.ensure_future(cache.get(ALICE))
    await started.wait()
    cache.invalidate(None)
    release.set()
    await waiting
    assert len(cache) == 0


async def test_concurrent_gets_share_one_load_and_a_prefetch_is_joined() -> None:
    calls = 0

    async def load(customer_id: str) -> CustomerCard | None:
        nonlocal calls
        calls += 1
        return CustomerCard(customer_id, "x")

    cache = CardCache(load, lambda: True)
    cache.prefetch(ALICE)
    cards = await asyncio.gather(*(cache.get(ALICE) for _ in range(10)))
    assert calls == 1 and all(c is cards[0] for c in cards)


async def test_nothing_is_kept_while_the_notices_are_not_heard(pool) -> None:
    await load_trace_crm(pool)
    found = PostgresCards(pool, PostgresDirectory(pool), "US")  # its listener never started
    assert (await found.cache.get(ALICE)) is not None
    assert len(found.cache) == 0


async def test_the_cache_is_bounded_and_a_failed_prefetch_is_harmless() -> None:
    async def load(customer_id: str) -> CustomerCard | None:
        if customer_id == "broken":
            raise RuntimeError("down")
        return CustomerCard(customer_id, customer_id)

    cache = CardCache(load, lambda: True, max_cards=2)
    for cid in ("a", "b", "c"):
        await cache.get(cid)
    assert len(cache) == 2
    cache.prefetch("broken")
    await cache.close()
    with pytest.raises(RuntimeError):
        await cache.get("broken")
