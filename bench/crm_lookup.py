"""Caller lookup and routing throughput against a real PostgreSQL, cache off versus on, and
how fast a CRM change reaches the cache (NOTIFY round trip), in one run.

    .venv/bin/python bench/crm_lookup.py [--customers 100000] [--lookups 5000] [--concurrency 50]

Needs a PostgreSQL server: CRM_BRIDGE_TEST_PG (default postgresql://postgres@127.0.0.1:5432/postgres);
a throw-away database is created, migrated, filled and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from bridge.config import build_config
from bridge.crm.directory import PostgresDirectory
from bridge.db.migrate import apply_migrations
from bridge.db.pool import connect, create_pool
from bridge.models import InboundCall
from bridge.routing.decide import decide
from bridge.routing.rules import make_rule
from bridge.routing.service import PostgresDecisionLog, RouteService
from bridge.routing.store import RuleStore

ADMIN_URL = os.environ.get("CRM_BRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def phone(n: int) -> str:
    return f"+1555{n:07d}"


async def fill(pool: asyncpg.Pool[Any], customers: int) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO customers (id, name, attributes)"
            " SELECT 'c' || n, 'Customer ' || n, jsonb_build_object('lifetime_value', n % 20000)"
            " FROM generate_series(1, $1) n",
            customers,
        )
        await conn.execute(
            "INSERT INTO customer_phones (e164, customer_id)"
            " SELECT '+1555' || lpad(n::text, 7, '0'), 'c' || n FROM generate_series(1, $1) n",
            customers,
        )
        await conn.execute(
            "INSERT INTO customer_tags (customer_id, tag)"
            " SELECT 'c' || n, 'vip' FROM generate_series(1, $1, 10) n",
            customers,
        )
        await conn.execute("ANALYZE")
    store = RuleStore(pool)
    for i in range(48):
        await store.add_rule(make_rule(f"did{i}", f"q{i}", did=f"1800555{i:04d}"))
    await store.add_rule(make_rule("vip", "senior", tags_any="vip"))
    await store.add_rule(make_rule("rich", "gold", attr="lifetime_value>=15000"))


async def rate(label: str, numbers: list[str], fn: Any, concurrency: int) -> float:
    queue = iter(numbers)

    async def worker() -> None:
        for number in queue:
            await fn(number)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    per_s = len(numbers) / (time.perf_counter() - started)
    print(f"{label:<44} {per_s:>10,.0f} /s")
    return per_s


async def notify_latency(pool: asyncpg.Pool[Any], directory: PostgresDirectory, n: int) -> None:
    samples = []
    for i in range(n):
        number = phone(i + 1)
        await directory.lookup(number)
        started = time.perf_counter()
        await pool.execute("UPDATE customers SET name = $2 WHERE id = $1", f"c{i + 1}", f"R{i}")
        while directory.is_cached(number):  # noqa: ASYNC110 - spin to time the NOTIFY
            await asyncio.sleep(0)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    print(
        f"{'UPDATE commit -> cache entry dropped':<44} p50 {statistics.median(samples):.2f} ms,"
        f" p99 {samples[int(len(samples) * 0.99) - 1]:.2f} ms ({n} changes)"
    )


async def main(customers: int, lookups: int, concurrency: int) -> None:
    name = f"crmbridge_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rpartition("/")[0] + "/" + name
    try:
        conn = await connect(url)
        await apply_migrations(conn)
        await conn.close()
        pool = await create_pool(url, min_size=concurrency, max_size=concurrency + 4)
        await fill(pool, customers)
        rng = random.Random(1)
        hot = [phone(rng.randint(1, customers)) for _ in range(1000)]
        numbers = [rng.choice(hot) for _ in range(lookups)]
        print(
            f"{customers:,} customers, {lookups:,} lookups over {len(hot):,} numbers,"
            f" {concurrency} concurrent"
        )

        uncached = PostgresDirectory(pool)  # not started: no listener, so no cache
        cold = await rate(
            "lookup, no cache (one indexed query each)", numbers, uncached.lookup, concurrency
        )
        directory = PostgresDirectory(pool)
        await directory.start()
        for number in hot:
            await directory.lookup(number)
        warm = await rate("lookup, cache on (warm)", numbers, directory.lookup, concurrency)
        print(f"{'cache speed-up':<44} {warm / cold:>10.1f} x")

        rules = RuleStore(pool)
        await rules.start()
        config = build_config({}, {}, runtime=False)
        service = RouteService(directory, rules, config, decisions=PostgresDecisionLog(rules.pool))
        at = datetime(2026, 11, 23, 12, tzinfo=UTC)

        async def route(number: str) -> None:
            await service.route(InboundCall(number, number, "", "18005550100", at))

        await rate("RouteService.route (cache on, 50 rules)", numbers, route, concurrency)
        current = await rules.current()
        customer = await directory.lookup(hot[0])
        call = InboundCall(hot[0], hot[0], "", "18005550100", at)
        tz = ZoneInfo("UTC")
        started = time.perf_counter()
        rounds = 20000
        for _ in range(rounds):
            decide(call, customer, current, default_queue="support", tz=tz)
        per_s = rounds / (time.perf_counter() - started)
        print(f"{'decide() alone, 50 rules':<44} {per_s:>10,.0f} /s")
        await notify_latency(pool, directory, 200)
        await service.stop()
        await rules.stop()
        await directory.stop()
        await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.customers, args.lookups, args.concurrency))
