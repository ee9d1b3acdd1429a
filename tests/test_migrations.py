from __future__ import annotations

from typing import Any

import asyncpg

from bridge.db.migrate import apply_migrations, migration_files


def test_migrations_are_shipped_in_order() -> None:
    names = [name for name, _ in migration_files()]
    assert names and names == sorted(names)
    assert names[0].startswith("001_")


async def test_migrating_twice_applies_nothing_the_second_time(
    pool: asyncpg.Pool[Any],
) -> None:
    async with pool.acquire() as conn:
        assert await apply_migrations(conn) == []
        recorded = await conn.fetchval("SELECT count(*) FROM schema_migrations")
    assert recorded == len(migration_files())


async def test_a_phone_belongs_to_one_customer(pool: asyncpg.Pool[Any]) -> None:
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO customers (id, name) VALUES ('a', 'A'), ('b', 'B')")
        await conn.execute(
            "INSERT INTO customer_phones (e164, customer_id) VALUES ('+15551230001', 'a')"
        )
        try:
            await conn.execute(
                "INSERT INTO customer_phones (e164, customer_id) VALUES ('+15551230001', 'b')"
            )
        except asyncpg.UniqueViolationError:
            pass
        else:
            raise AssertionError("a second customer took the same phone")
