"""FastAGI `/route` against its floor: a minimal asyncio FastAGI server doing the same query
and the same round trips, both in this process on the same event loop, measured in one run.

    .venv/bin/python bench/route_floor.py [--customers 100000] [--rounds 3] [--rate 300]
        [--seconds 8] [--burst 20000] [--concurrency 50] [--pool 3] [--loop auto]

Each round measures, for the bridge and for the floor (their order alternating by round):
- CPU per call: this process's CPU time (user + system; the PBX clients run in another
  process) over the calls of an open-loop run, divided by the calls; and the same over
  `--cpu-calls` calls kept `--cpu-concurrency` in flight (closed loop), a steadier figure;
- p99 latency with calls arriving at random (Poisson, open loop) at `--rate` per second,
  timed from each call's scheduled arrival to the server's close, so a stalled server
  is charged for the calls queued behind it.
Then the bridge alone takes `--burst` calls at `--concurrency` (bench/agi_route.py's default
load) and the calls sent to the default queue (over budget) are counted.

The floor reads the header, sends the same `GET VARIABLE CHANNEL(linkedid)` while running
the directory's own `LOOKUP_SQL` on an asyncpg pool, then the same eight `SET VARIABLE`s,
each answered before the next, and closes: what the bridge does on the wire, with nothing
else. The PBX side counts the commands each server sent, so equal round trips are checked.

The same work on both sides, so the ratio measures only the bridge's overhead:
- the decision row: the bridge writes one `route_decisions` row per call (batched, one
  INSERT per 20 ms tick on a connection of its own); the floor writes the same row with the
  same batched INSERT into a table of its own (`floor_decisions`, like `route_decisions`),
  so neither side's uniqueids collide with the other's;
- the query on every call: the bridge's customer cache is off here (`cache_size=0`), as the
  floor has none; otherwise the bridge would skip most queries the floor runs;
- callers as a call centre sees them (`returning_callers`): most calls (`--returning`,
  80 %) come from a few thousand callers who called before, the rest from first-time
  callers (customers, and 10 % unknown numbers). The bridge's caller-ID parsing cache
  (`bridge.crm.phones`) is a cost the floor does not have, and it hits as in production.

Pools are small so the run stays within ten database connections: `--pool` connections
for lookups on each side; the bridge's pool has two more, for the LISTEN connection the
directory and the rules share (as in the app) and the decision log's own connection; the
floor's has one more, for its decision writes.

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
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

import asyncpg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from agi_route import callers, fill, header, load, phone

from bridge.agi import build_agi_server
from bridge.cli import collector
from bridge.config import build_config
from bridge.crm.directory import LOOKUP_SQL, PostgresDirectory
from bridge.crm.listener import PgListener
from bridge.db.migrate import apply_migrations
from bridge.db.pool import connect, create_pool
from bridge.routing.service import _INSERT_DECISIONS, PostgresDecisionLog, RouteService
from bridge.routing.store import RuleStore

ADMIN_URL = os.environ.get("CRM_BRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SET_VARIABLES = 8
REGULARS = 2000  # callers who call again and again (a few thousand)
TICK_S = 0.02  # the floor's decision batch, as bridge.routing.decision_log's


def returning_callers(customers: int, count: int, seed: int, returning: float) -> list[str]:
    """`count` caller IDs as a call centre sees them: a share `returning` from `REGULARS`
    callers who called before (customers), the rest as `callers` draws them (first-time
    callers: customers, and 10 % unknown numbers)."""
    rng = random.Random(seed)
    regulars = [phone(n) for n in random.Random(1).sample(range(1, customers + 1), REGULARS)]
    first_time = iter(callers(customers, count, seed + 1))
    return [
        rng.choice(regulars) if rng.random() < returning else next(first_time) for _ in range(count)
    ]


# --- the PBX side (child process) ------------------------------------------------------


async def timed_session(port: int, data: bytes, linkedid: str) -> tuple[int, bool]:
    """One call; returns the commands the server sent and whether it was degraded."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    commands = 0
    degraded = False
    try:
        writer.write(data)
        while line := await reader.readline():
            commands += 1
            if line.startswith(b"GET VARIABLE"):
                writer.write(f"200 result=1 ({linkedid})\n".encode())
            else:
                degraded |= line.startswith(b'SET VARIABLE BRIDGE_DEGRADED "1"')
                writer.write(b"200 result=1\n")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return commands, degraded


async def open_loop(
    port: int, phones: list[str], rate: float, first: int, seed: int
) -> dict[str, Any]:
    """Calls at Poisson arrivals; latency from the scheduled arrival, not the actual start."""
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    commands: list[int] = []
    degraded = 0
    errors = 0

    async def call(at: float, i: int, caller: str) -> None:
        nonlocal degraded, errors
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            sent, was_degraded = await timed_session(port, header(caller, i), f"1795464246.{i}0")
        except OSError:
            errors += 1
            return
        latencies.append(loop.time() - at)
        commands.append(sent)
        degraded += was_degraded

    start = loop.time() + 0.05
    at = start
    tasks = []
    for n, caller in enumerate(phones):
        at += rng.expovariate(rate)
        tasks.append(asyncio.ensure_future(call(at, first + n, caller)))
    await asyncio.gather(*tasks)
    return {
        "elapsed": loop.time() - start,
        "latencies": latencies,
        "commands": statistics.mean(commands) if commands else 0.0,
        "degraded": degraded,
        "errors": errors,
    }


def _open_loop_job(port: int, phones: list[str], rate: float, first: int, seed: int) -> Any:
    return open_loop(port, phones, rate, first, seed)


def _closed_loop_job(port: int, phones: list[str], concurrency: int, first: int) -> Any:
    return load(port, phones, concurrency, first)


def _child(kind: str, args: tuple[Any, ...], out: Connection) -> None:
    job = _open_loop_job if kind == "open" else _closed_loop_job
    out.send(asyncio.run(job(*args)))
    out.close()


async def in_child(kind: str, *args: Any) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    receiving, sending = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(kind, args, sending))
    proc.start()
    sending.close()
    result: dict[str, Any] = await asyncio.to_thread(receiving.recv)
    await asyncio.to_thread(proc.join)
    return result


# --- the floor ----------------------------------------------------------------------------


FLOOR_INSERT = _INSERT_DECISIONS.replace("INTO route_decisions", "INTO floor_decisions")


class FloorDecisions:
    """The floor's decision rows: queued per call, one INSERT per tick on its own connection."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool
        self._rows: list[tuple[Any, ...]] = []
        self._writing: asyncio.Task[None] | None = None

    def add(self, row: tuple[Any, ...]) -> None:
        self._rows.append(row)
        if self._writing is None:
            self._writing = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        conn = await self._pool.acquire()
        try:
            while self._rows:
                await asyncio.sleep(TICK_S)
                rows, self._rows = self._rows, []
                await conn.execute(FLOOR_INSERT, *zip(*rows, strict=True))
            self._writing = None  # before the release: a row added meanwhile starts a writer
        finally:
            await self._pool.release(conn)

    async def drain(self) -> None:
        if self._writing is not None:
            await self._writing


class FloorServer:
    """The least a FastAGI `/route` can do: header, GET VARIABLE, the lookup, 8 SET VARIABLEs,
    the decision row."""

    def __init__(self, pool: asyncpg.Pool[Any], decisions: FloorDecisions) -> None:
        self._pool = pool
        self._decisions = decisions
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        caller = uniqueid = channel = ""
        try:
            while (line := await reader.readline()) not in (b"\n", b""):
                if line.startswith(b"agi_callerid:"):
                    caller = line[13:].strip().decode()
                elif line.startswith(b"agi_uniqueid:"):
                    uniqueid = line[13:].strip().decode()
                elif line.startswith(b"agi_channel:"):
                    channel = line[12:].strip().decode()
            at = datetime.now(UTC)
            lookup = asyncio.ensure_future(self._pool.fetchrow(LOOKUP_SQL, caller))
            writer.write(b'GET VARIABLE "CHANNEL(linkedid)"\n')
            reply = await reader.readline()
            linkedid = reply.partition(b"(")[2].partition(b")")[0].decode()
            row = await lookup
            name = row["name"] if row is not None else ""
            for n in range(SET_VARIABLES):
                writer.write(f'SET VARIABLE BRIDGE_V{n} "{name}"\n'.encode())
                await reader.readline()
            self._decisions.add(
                (
                    uniqueid,
                    linkedid,
                    channel,
                    caller,
                    "",
                    "",
                    row["id"] if row else None,
                    "support",
                    0,
                    "default",
                    False,
                    f"{linkedid}.wav",
                    at,
                )
            )
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


# --- measuring ----------------------------------------------------------------------------


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def p99(latencies: list[float]) -> float:
    lat = sorted(latencies)
    return lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else float("nan")


async def measure(
    port: int, phones: list[str], rate: float, first: int, seed: int
) -> tuple[float, float, dict[str, Any]]:
    """(CPU ms per call, p99 ms, raw result) of one open-loop run against `port`."""
    cpu0 = cpu_seconds()
    result = await in_child("open", port, phones, rate, first, seed)
    cpu = cpu_seconds() - cpu0
    calls = max(1, len(result["latencies"]))
    return cpu / calls * 1000, p99(result["latencies"]), result


async def cpu_closed_loop(port: int, phones: list[str], args: argparse.Namespace, r: int) -> float:
    """CPU ms per call with `--cpu-concurrency` calls always in flight: the server busy
    without queueing, so the figure depends less on how the calls happen to arrive."""
    cpu0 = cpu_seconds()
    result = await in_child("closed", port, phones, args.cpu_concurrency, (r + 5) * 10**6)
    return (cpu_seconds() - cpu0) / max(1, len(result["latencies"])) * 1000


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Both servers run on this loop; the PBX clients always on asyncio's own."""
    if kind == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if kind == "uvloop":
            raise
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def main(args: argparse.Namespace) -> None:
    name = f"crmbridge_floor_{os.getpid()}_{secrets.token_hex(3)}"
    base = ADMIN_URL.rpartition("/")[0]
    url = f"{base}/{name}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        conn = await connect(url)
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()
        config = build_config(
            {"agi": {"port": 0, "max_sessions": 1000}, "database": {"url": url}}, {}, runtime=False
        )
        # The bridge's pool also lends the shared LISTEN connection and (once decisions are
        # batched) the decision log's: two more, so both sides have `--pool` for lookups.
        pool = await create_pool(url, min_size=args.pool + 2, max_size=args.pool + 2)
        bare = await create_pool(url, min_size=args.pool + 1, max_size=args.pool + 1)
        try:
            print(f"filling {args.customers} customers ...", flush=True)
            await fill(pool, args.customers)
            await pool.execute("CREATE TABLE floor_decisions (LIKE route_decisions INCLUDING ALL)")
            listener = PgListener(pool, name="crm-listener")  # one, shared, as the app does
            # No customer cache: the bridge runs the query on every call, as the floor does.
            directory = PostgresDirectory(pool, listener=listener, cache_size=0)
            rules = RuleStore(pool, listener=listener)
            await listener.start()
            await directory.start()
            await rules.start()
            await listener.wait_listening()
            service = RouteService(
                directory, rules, config, decisions=PostgresDecisionLog(rules.pool)
            )
            bridge = build_agi_server(config, service)
            floor_decisions = FloorDecisions(bare)
            floor = FloorServer(bare, floor_decisions)
            await bridge.start()
            await floor.start()
            mix = partial(returning_callers, args.customers, returning=args.returning)
            try:
                await in_child("closed", bridge.port, mix(500, 2), 10, 10**7)
                await in_child("closed", floor.port, mix(500, 3), 10, 10**7)
                await service.drain(within_s=30)
                await floor_decisions.drain()
                n = int(args.rate * args.seconds)
                print(
                    f"\n{args.rounds} rounds; open loop {args.rate:g} calls/s for {n} calls each;"
                    f" pool {args.pool} each; budget {config.agi.budget_ms} ms;"
                    f" loop {type(asyncio.get_running_loop()).__module__};"
                    f" {args.returning:.0%} of calls from {REGULARS} returning callers"
                )
                print(f"load average at start: {loadavg()}\n")
                rows: dict[str, list[tuple[float, float]]] = {"bridge": [], "floor": []}
                closed: dict[str, list[float]] = {"bridge": [], "floor": []}
                for r in range(args.rounds):
                    phones = mix(n, 100 + r)
                    order = [("bridge", bridge.port), ("floor", floor.port)]
                    if r % 2:
                        order.reverse()
                    for who, port in order:
                        cpu, tail, result = await measure(
                            port, phones, args.rate, (r + 1) * 10**6, r
                        )
                        await service.drain(within_s=30)
                        await floor_decisions.drain()
                        rows[who].append((cpu, tail))
                        steady = await cpu_closed_loop(port, mix(args.cpu_calls, 200 + r), args, r)
                        await service.drain(within_s=30)
                        await floor_decisions.drain()
                        closed[who].append(steady)
                        print(
                            f"round {r + 1} {who:<6} CPU/call {cpu:6.3f} ms"
                            f" (closed loop x{args.cpu_concurrency}: {steady:6.3f} ms)"
                            f"   p99 {tail:7.2f} ms   commands/call {result['commands']:.1f}"
                            f"   degraded {result['degraded']}   errors {result['errors']}"
                            f"   load {loadavg()}",
                            flush=True,
                        )
                print()
                burst = await in_child(
                    "closed",
                    bridge.port,
                    mix(args.burst, 1),
                    args.concurrency,
                    0,
                )
                await service.drain(within_s=60)
            finally:
                await bridge.stop()
                await floor.stop()
                await service.stop()
                await rules.stop()
                await directory.stop()
                await listener.stop()
            cpu_b = statistics.median(c for c, _ in rows["bridge"])
            cpu_f = statistics.median(c for c, _ in rows["floor"])
            p99_b = statistics.median(t for _, t in rows["bridge"])
            p99_f = statistics.median(t for _, t in rows["floor"])
            print(
                f"median of rounds: CPU/call bridge {cpu_b:.3f} ms, floor {cpu_f:.3f} ms,"
                f" ratio {cpu_b / cpu_f:.2f}x"
            )
            steady_b = statistics.median(closed["bridge"])
            steady_f = statistics.median(closed["floor"])
            print(
                f"median of rounds: CPU/call closed loop x{args.cpu_concurrency}"
                f" bridge {steady_b:.3f} ms, floor {steady_f:.3f} ms,"
                f" ratio {steady_b / steady_f:.2f}x"
            )
            print(
                f"median of rounds: p99 at {args.rate:g}/s bridge {p99_b:.2f} ms,"
                f" floor {p99_f:.2f} ms, ratio {p99_b / p99_f:.2f}x"
            )
            lat = sorted(burst["latencies"])
            print(
                f"burst {len(lat)} calls at concurrency {args.concurrency}:"
                f" over budget (default queue) {burst['degraded']},"
                f" {len(lat) / burst['elapsed']:.0f} calls/s, p99 {p99(lat):.1f} ms;"
                f" agi errors {bridge.errors}"
            )
            recorded = await pool.fetchval("SELECT count(*) FROM route_decisions")
            floor_rows = await pool.fetchval("SELECT count(*) FROM floor_decisions")
            print(
                f"decision rows written: bridge {recorded}, floor {floor_rows};"
                f" load average at end: {loadavg()}"
            )
        finally:
            await pool.close()
            await bare.close()
    finally:
        admin = await asyncpg.connect(ADMIN_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--burst", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--cpu-calls", type=int, default=2000)
    parser.add_argument("--cpu-concurrency", type=int, default=4)
    parser.add_argument("--pool", type=int, default=3)  # lookup connections per side
    parser.add_argument("--returning", type=float, default=0.8)  # share of returning callers
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="the servers' event loop; auto: uvloop when installed, as `crm-bridge run` does",
    )
    parser.add_argument(
        "--gc",
        choices=("run", "default"),
        default="run",
        help="the cycle collector as `crm-bridge run` sets it (bridge.cli.collector), for both"
        " sides (one process), or CPython's default",
    )
    args = parser.parse_args()
    if args.gc == "run":
        collector.tune()
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        runner.run(main(args))
