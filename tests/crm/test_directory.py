"""Caller lookup against the real CRM tables, its cache, and NOTIFY invalidation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from bridge.crm.directory import PostgresDirectory
from bridge.db.pool import create_pool
from bridge.errors import CrmUnavailable
from bridge.models import Customer
from tests.crm.fixture_crm import ALICE, BOB, ZHANG, load_trace_crm

ALICE_PHONE, BOB_PHONE, ZHANG_PHONE = "+15551230001", "+15551230002", "+8613800138000"


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 5.0) -> None:
    """Poll `check` until true (bounded): waiting for a notification to arrive."""
    async with asyncio.timeout(within_s):
        while not await check():  # noqa: ASYNC110 - a bounded poll for a NOTIFY's effect
            await asyncio.sleep(0.01)


@pytest.fixture
async def directory(pool: asyncpg.Pool[Any]) -> AsyncIterator[PostgresDirectory]:
    await load_trace_crm(pool)
    d = PostgresDirectory(pool, keepalive_s=0.5)
    await d.start()
    assert d.listener.listening
    try:
        yield d
    finally:
        await d.stop()


async def silently(pool: asyncpg.Pool[Any], sql: str, *args: Any) -> None:
    """Change the CRM without firing triggers (no NOTIFY): shows what the cache serves."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(sql, *args)


async def test_lookup_returns_customer_with_tags_owner_and_attributes(
    pool: asyncpg.Pool[Any], directory: PostgresDirectory
) -> None:
    await pool.execute(
        "UPDATE customers SET attributes = $2 WHERE id = $1", ZHANG, {"lifetime_value": 12000}
    )
    await pool.execute(
        "INSERT INTO customer_owners (customer_id, agent_id) VALUES ($1, '2001')", ZHANG
    )
    customer = await directory.lookup(ZHANG_PHONE)
    assert customer == Customer(
        ZHANG, "张伟", ("complaint-risk", "vip"), {"lifetime_value": 12000}, "2001"
    )
    assert await directory.lookup(BOB_PHONE) == Customer(BOB, "Bob Li", (), {}, None)
    assert await directory.lookup("+15550000000") is None


async def test_second_lookup_is_served_from_the_cache(
    pool: asyncpg.Pool[Any], directory: PostgresDirectory
) -> None:
    first = await directory.lookup(ALICE_PHONE)
    assert first is not None and first.name == "Alice Chen"
    assert await directory.lookup("+15550000000") is None
    await silently(pool, "UPDATE customers SET name = 'Changed' WHERE id = $1", ALICE)
    await silently(
        pool, "INSERT INTO customer_phones (e164, customer_id) VALUES ('+15550000000', $1)", BOB
    )
    assert await directory.lookup(ALICE_PHONE) == first  # cached hit
    assert await directory.lookup("+15550000000") is None  # cached miss
    assert directory.cached == 2
    directory.clear()
    changed = await directory.lookup(ALICE_PHONE)
    assert changed is not None and changed.name == "Changed"


async def _sees(directory: PostgresDirectory, phone: str, test: Callable[[Any], bool]) -> None:
    """Assert that the directory's answer for `phone` comes to pass `test` (a notification
    has to arrive first)."""

    async def check() -> bool:
        return test(await directory.lookup(phone))

    try:
        await eventually(check)
    except TimeoutError:
        pytest.fail(f"the directory's answer for {phone} never changed as expected")


async def test_tag_change_in_db_invalidates_cached_customer(
    pool: asyncpg.Pool[Any], directory: PostgresDirectory
) -> None:
    before = await directory.lookup(BOB_PHONE)
    assert before is not None and before.tags == ()
    await pool.execute("INSERT INTO customer_tags (customer_id, tag) VALUES ($1, 'vip')", BOB)
    await _sees(directory, BOB_PHONE, lambda c: c.tags == ("vip",))
    await pool.execute("DELETE FROM customer_tags WHERE customer_id = $1", BOB)
    await _sees(directory, BOB_PHONE, lambda c: c.tags == ())
    await pool.execute("UPDATE customer_tags SET tag = 'gold' WHERE customer_id = $1", ALICE)
    await _sees(directory, ALICE_PHONE, lambda c: c.tags == ("gold",))


async def test_every_kind_of_change_invalidates(
    pool: asyncpg.Pool[Any], directory: PostgresDirectory
) -> None:
    for phone in (ALICE_PHONE, BOB_PHONE, "+15550000000"):
        await directory.lookup(phone)
    # a cached miss becomes a hit when the phone is added
    await pool.execute(
        "INSERT INTO customer_phones (e164, customer_id) VALUES ('+15550000000', $1)", BOB
    )
    await _sees(directory, "+15550000000", lambda c: c is not None and c.id == BOB)
    # rename, attributes, owner
    await pool.execute("UPDATE customers SET name = 'Robert Li' WHERE id = $1", BOB)
    await _sees(directory, BOB_PHONE, lambda c: c.name == "Robert Li")
    await pool.execute(
        "INSERT INTO customer_owners (customer_id, agent_id) VALUES ($1, '1001')", BOB
    )
    await _sees(directory, "+15550000000", lambda c: c.owner == "1001")
    await pool.execute("UPDATE customer_owners SET agent_id = '1002' WHERE customer_id = $1", BOB)
    await _sees(directory, BOB_PHONE, lambda c: c.owner == "1002")
    # a phone moving from Bob to Alice invalidates both
    await directory.lookup(ALICE_PHONE)
    await pool.execute(
        "UPDATE customer_phones SET customer_id = $1 WHERE e164 = $2", ALICE, BOB_PHONE
    )
    await _sees(directory, BOB_PHONE, lambda c: c.id == ALICE)
    # deleting the customer (cascade to phones)
    await pool.execute("DELETE FROM customers WHERE id = $1", ALICE)
    await _sees(directory, ALICE_PHONE, lambda c: c is None)
    await _sees(directory, BOB_PHONE, lambda c: c is None)


async def test_unrelated_customer_change_keeps_other_entries(
    pool: asyncpg.Pool[Any], directory: PostgresDirectory
) -> None:
    alice = await directory.lookup(ALICE_PHONE)
    await directory.lookup(BOB_PHONE)
    await silently(pool, "UPDATE customers SET name = 'Silent' WHERE id = $1", ALICE)
    await pool.execute("UPDATE customers SET name = 'Robert' WHERE id = $1", BOB)
    await _sees(directory, BOB_PHONE, lambda c: c.name == "Robert")
    assert await directory.lookup(ALICE_PHONE) == alice  # still cached: not Bob's change


async def test_listener_survives_its_connection_being_killed(
    pool: asyncpg.Pool[Any], directory: PostgresDirectory
) -> None:
    listener = directory.listener
    generation, pid = listener.generation, listener.backend_pid
    await directory.lookup(ALICE_PHONE)
    await silently(pool, "UPDATE customers SET name = 'Missed' WHERE id = $1", ALICE)
    assert await pool.fetchval("SELECT pg_terminate_backend($1)", pid)
    async with asyncio.timeout(10):
        new_generation = await listener.wait_listening(generation)
    assert new_generation > generation and listener.backend_pid != pid
    # the cache was dropped on reconnect: the silent change (never notified) is visible
    missed = await directory.lookup(ALICE_PHONE)
    assert missed is not None and missed.name == "Missed"
    # and notifications flow again on the new connection
    await pool.execute("INSERT INTO customer_tags (customer_id, tag) VALUES ($1, 'new')", ALICE)
    await _sees(directory, ALICE_PHONE, lambda c: "new" in c.tags)
    assert directory.health().state == "up"


async def test_listener_killed_twice_in_a_row_still_recovers(
    pool: asyncpg.Pool[Any], directory: PostgresDirectory
) -> None:
    listener = directory.listener
    first = listener.generation
    for _ in range(2):
        generation = listener.generation
        await pool.fetchval("SELECT pg_terminate_backend($1)", listener.backend_pid)
        async with asyncio.timeout(10):
            await listener.wait_listening(generation)
    assert listener.listening and listener.generation >= first + 2
    await directory.lookup(BOB_PHONE)
    await pool.execute("UPDATE customers SET name = 'After' WHERE id = $1", BOB)
    await _sees(directory, BOB_PHONE, lambda c: c.name == "After")


async def test_without_a_listener_nothing_is_cached(pool: asyncpg.Pool[Any]) -> None:
    await load_trace_crm(pool)
    directory = PostgresDirectory(pool)  # never started: no notifications, so no cache
    assert (await directory.lookup(ALICE_PHONE)) is not None
    await silently(pool, "UPDATE customers SET name = 'Fresh' WHERE id = $1", ALICE)
    fresh = await directory.lookup(ALICE_PHONE)
    assert fresh is not None and fresh.name == "Fresh"
    assert directory.cached == 0
    assert directory.health().state == "degraded"


async def test_cache_is_bounded(pool: asyncpg.Pool[Any]) -> None:
    await load_trace_crm(pool)
    directory = PostgresDirectory(pool, cache_size=2)
    await directory.start()
    try:
        for phone in (ALICE_PHONE, BOB_PHONE, ZHANG_PHONE, "+15550000001", "+15550000002"):
            await directory.lookup(phone)
        assert directory.cached == 2
    finally:
        await directory.stop()


@pytest.mark.parametrize(
    "hostile",
    [
        "",
        "anonymous",
        "15551230001",
        "+15551230001\r\n",
        "+1555123'; DROP TABLE customers;--",
        "+1555\x001230001",
        "+" + "1" * 100_000,
        "\udcff",
    ],
)
async def test_hostile_numbers_are_just_not_found(
    pool: asyncpg.Pool[Any], directory: PostgresDirectory, hostile: str
) -> None:
    assert await directory.lookup(hostile) is None
    assert await pool.fetchval("SELECT count(*) FROM customers") == 3


async def test_database_down_raises_crm_unavailable(database_url: str) -> None:
    own = await create_pool(database_url, min_size=1, max_size=2)
    directory = PostgresDirectory(own)
    await own.close()
    with pytest.raises(CrmUnavailable):
        await directory.lookup(ALICE_PHONE)
    assert directory.health().state == "down"


async def test_half_open_listener_connection_is_noticed_by_the_keepalive(
    pool: asyncpg.Pool[Any], database_url: str
) -> None:
    from urllib.parse import urlsplit

    from tests.crm.tcp_proxy import FreezingProxy

    await load_trace_crm(pool)
    target = urlsplit(database_url)
    proxy = FreezingProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    proxied_url = database_url.replace(
        f"{target.hostname}:{target.port}", f"127.0.0.1:{proxy.port}"
    )
    via_proxy = await create_pool(proxied_url, min_size=1, max_size=2)
    directory = PostgresDirectory(via_proxy, keepalive_s=0.2)
    try:
        await directory.start()
        generation = directory.listener.generation
        await directory.lookup(BOB_PHONE)
        proxy.freeze_existing()  # the listener's socket stays open but goes silent
        async with asyncio.timeout(15):
            await directory.listener.wait_listening(generation)
        assert directory.listener.generation > generation, "the listener reconnected"
        await directory.lookup(BOB_PHONE)
        await pool.execute("UPDATE customers SET name = 'Seen' WHERE id = $1", BOB)
        await _sees(directory, BOB_PHONE, lambda c: c.name == "Seen")
    finally:
        await directory.stop()
        await via_proxy.close()
        await proxy.close()


async def test_change_observers_hear_customer_and_card_notices_and_drops(
    pool: asyncpg.Pool[Any], directory: PostgresDirectory
) -> None:
    heard: list[str | None] = []
    arrived = asyncio.Event()

    def observer(customer_id: str | None) -> None:
        heard.append(customer_id)
        arrived.set()

    directory.on_change(observer)
    assert await directory.lookup(ALICE_PHONE) is not None
    assert await directory.lookup("+15550000000") is None
    # An order is on the card only: observers hear it, the lookup cache keeps its entries.
    await pool.execute(
        "INSERT INTO orders (customer_id, reference, product, amount) VALUES ($1, 'o', 'p', 1)",
        ALICE,
    )
    async with asyncio.timeout(5):
        await arrived.wait()
    assert heard == [ALICE]
    assert directory.is_cached(ALICE_PHONE) and directory.is_cached("+15550000000")
    arrived.clear()
    await pool.execute("UPDATE customers SET name = 'Alice Wong' WHERE id = $1", ALICE)
    async with asyncio.timeout(5):
        await arrived.wait()
    assert heard == [ALICE, ALICE] and not directory.is_cached(ALICE_PHONE)
    directory.clear()
    assert heard == [ALICE, ALICE, None]
