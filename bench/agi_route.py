"""FastAGI /route throughput and latency against a real PostgreSQL, beside a bare asyncpg
point query on the same data, measured in one run.

    .venv/bin/python bench/agi_route.py [--customers 100000] [--sessions 20000] [--concurrency 50]

The bridge side is the real stack (PostgresDirectory with its cache, RuleStore, RouteService
recording each decision, AgiServer) in this process. The PBX side runs in a separate process:
`--concurrency` FastAGI clients that each send an Asterisk-like environment, answer
`GET VARIABLE CHANNEL(linkedid)` and the eight `SET VARIABLE`s, and time a session from
connect to the server's close (what a call waits). Callers are drawn uniformly from all
customers (plus 10 % unknown numbers), so most lookups miss the directory's cache.

The baseline: the same number of `SELECT customer_id FROM customer_phones WHERE e164 = $1`
through an asyncpg pool of the same size, with the same concurrency, in this process.

Needs a PostgreSQL server: CRM_BRIDGE_TEST_PG (default postgresql://postgres@127.0.0.1:5432/postgres);
a throw-away database is created, migrated, filled and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import resource
import secrets
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any

import asyncpg
from prometheus_client import REGISTRY

from bridge.agi import build_agi_server
from bridge.config import build_config
from bridge.crm.directory import PostgresDirectory
from bridge.db.migrate import apply_migrations
from bridge.db.pool import connect, create_pool
from bridge.routing.rules import make_rule
from bridge.routing.service import PostgresDecisionLog, RouteService
from bridge.routing.store import RuleStore

ADMIN_URL = os.environ.get("CRM_BRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def phone(n: int) -> str:
    return f"+1555{n:07d}"


def callers(customers: int, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        phone(rng.randint(1, customers))
        if rng.random() < 0.9
        else f"+4420{rng.randint(0, 10**7):07d}"
        for _ in range(count)
    ]


def header(caller: str, i: int) -> bytes:
    env = {
        "network": "yes",
        "network_script": "route",
        "request": "agi://127.0.0.1:4573/route",
        "channel": f"PJSIP/trunk-{i:08x}",
        "language": "en",
        "type": "PJSIP",
        "uniqueid": f"1795464246.{i}",
        "version": "22.11.0",
        "callerid": caller,
        "calleridname": f"Caller {i}",
        "callingpres": "0",
        "dnid": "unknown",
        "rdnis": "unknown",
        "context": "inbound",
        "extension": "18005550100",
        "priority": "3",
        "accountcode": "",
        "threadid": "140407557895872",
    }
    return "".join(f"agi_{k}: {v}\n" for k, v in env.items()).encode() + b"\n"


# --- the PBX side (child process) ------------------------------------------------------


async def one_session(port: int, data: bytes, linkedid: str) -> tuple[float, bool]:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    degraded = False
    try:
        writer.write(data)
        while line := await reader.readline():
            if line.startswith(b"GET VARIABLE"):
                writer.write(f"200 result=1 ({linkedid})\n".encode())
            else:
                degraded |= line.startswith(b'SET VARIABLE BRIDGE_DEGRADED "1"')
                writer.write(b"200 result=1\n")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return time.perf_counter() - started, degraded


async def load(port: int, phones: list[str], concurrency: int, first: int) -> dict[str, Any]:
    latencies: list[float] = []
    degraded = 0
    queue = list(enumerate(phones, start=first))
    queue.reverse()

    async def worker() -> None:
        nonlocal degraded
        while queue:
            i, caller = queue.pop()
            took, was_degraded = await one_session(port, header(caller, i), f"1795464246.{i}0")
            latencies.append(took)
            degraded += was_degraded

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"elapsed": time.perf_counter() - started, "latencies": latencies, "degraded": degraded}


def pbx_process(
    port: int, phones: list[str], concurrency: int, first: int, out: Connection
) -> None:
    out.send(asyncio.run(load(port, phones, concurrency, first)))
    out.close()


def run_pbx(port: int, phones: list[str], concurrency: int, first: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    receiving, sending = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=pbx_process, args=(port, phones, concurrency, first, sending))
    proc.start()
    sending.close()
    return {"proc": proc, "pipe": receiving}


async def pbx_load(port: int, phones: list[str], concurrency: int, first: int) -> dict[str, Any]:
    started = run_pbx(port, phones, concurrency, first)
    result: dict[str, Any] = await asyncio.to_thread(started["pipe"].recv)
    await asyncio.to_thread(started["proc"].join)
    return result


# --- the baseline ------------------------------------------------------------------------


async def point_queries(
    pool: asyncpg.Pool[Any], phones: list[str], concurrency: int
) -> dict[str, Any]:
    latencies: list[float] = []
    queue = list(phones)

    async def worker() -> None:
        while queue:
            e164 = queue.pop()
            started = time.perf_counter()
            await pool.fetchval("SELECT customer_id FROM customer_phones WHERE e164 = $1", e164)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"elapsed": time.perf_counter() - started, "latencies": latencies}


# --- setup -------------------------------------------------------------------------------


async def fill(pool: asyncpg.Pool[Any], customers: int) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO customers (id, name) SELECT 'c' || n, 'Customer ' || n"
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
    await RuleStore(pool).add_rule(make_rule("vip", "senior", tags_any="vip"))


def summary(name: str, result: dict[str, Any]) -> tuple[float, float, float]:
    lat = sorted(result["latencies"])
    rate = len(lat) / result["elapsed"]
    p50 = statistics.median(lat) * 1000
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    print(f"{name:<34} {rate:>10.0f} /s   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   n={len(lat)}")
    return rate, p50, p99


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def decision_shares() -> list[tuple[float, float]]:
    total = REGISTRY.get_sample_value("crm_bridge_agi_route_seconds_count") or 1.0
    return [
        (
            le,
            (REGISTRY.get_sample_value("crm_bridge_agi_route_seconds_bucket", {"le": str(le)}) or 0)
            / total,
        )
        for le in (0.005, 0.01, 0.025, 0.05, 0.1, 0.3)
    ]


def cache_counts() -> tuple[float, float]:
    hit = REGISTRY.get_sample_value("crm_bridge_route_cache_total", {"result": "hit"}) or 0.0
    miss = REGISTRY.get_sample_value("crm_bridge_route_cache_total", {"result": "miss"}) or 0.0
    return hit, miss


async def main(args: argparse.Namespace) -> None:
    name = f"crmbridge_bench_{os.getpid()}_{secrets.token_hex(3)}"
    base = ADMIN_URL.rpartition("/")[0]
    url = f"{base}/{name}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await connect(url)
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()
        config = build_config(
            {"agi": {"port": 0, "max_sessions": 1000}, "database": {"url": url}}, {}, runtime=False
        )
        pool = await create_pool(url, min_size=2, max_size=config.database.pool_size)
        bare = await create_pool(url, min_size=2, max_size=config.database.pool_size)
        try:
            print(f"filling {args.customers} customers ...", flush=True)
            await fill(pool, args.customers)
            directory = PostgresDirectory(pool)
            rules = RuleStore(pool)
            await directory.start()
            await rules.start()
            await directory.listener.wait_listening()
            await rules.listener.wait_listening()
            service = RouteService(
                directory, rules, config, decisions=PostgresDecisionLog(rules.pool)
            )
            server = build_agi_server(config, service)
            await server.start()
            try:
                phones = callers(args.customers, args.sessions, seed=1)
                await pbx_load(server.port, callers(args.customers, 500, seed=2), 10, 10**6)
                await service.drain(within_s=30)
                hit0, miss0 = cache_counts()
                print(
                    f"\n{args.sessions} sessions / queries, concurrency {args.concurrency},"
                    f" pool size {config.database.pool_size}, budget {config.agi.budget_ms} ms\n"
                )
                cpu0 = cpu_seconds()
                agi = await pbx_load(server.port, phones, args.concurrency, 0)
                agi_cpu = cpu_seconds() - cpu0
                await service.drain(within_s=60)
                hit, miss = cache_counts()
                await bare.fetchval("SELECT 1")
                baseline = await point_queries(bare, phones, args.concurrency)
            finally:
                await server.stop()
                await service.stop()
                await rules.stop()
                await directory.stop()
            rate, p50, p99 = summary("FastAGI /route (full session)", agi)
            b_rate, b_p50, b_p99 = summary("asyncpg point query (bare)", baseline)
            print(
                f"\nratio route/query: throughput {rate / b_rate:.2f}x,"
                f" p50 {p50 / b_p50:.1f}x, p99 {p99 / b_p99:.1f}x"
            )
            lookups = (hit - hit0) + (miss - miss0)
            print(
                f"degraded decisions: {agi['degraded']} of {len(agi['latencies'])};"
                f" directory cache hits {((hit - hit0) / lookups * 100) if lookups else 0:.1f} %"
                f" of {lookups:.0f} lookups; agi errors {server.errors}"
            )
            print(
                f"bridge process CPU during the route run: {agi_cpu:.1f} s in"
                f" {agi['elapsed']:.1f} s wall ({agi_cpu / agi['elapsed']:.2f} of"
                f" {os.cpu_count()} cores)"
            )
            print("decision time (header complete → decision ready), share of sessions within:")
            print(
                "   "
                + "  ".join(f"{le * 1000:g} ms {share:.0%}" for le, share in decision_shares())
            )
            recorded = await pool.fetchval("SELECT count(*) FROM route_decisions")
            print(f"route_decisions rows written: {recorded}")
        finally:
            await pool.close()
            await bare.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=50)
    asyncio.run(main(parser.parse_args()))
