"""Pop latency: an `AgentCalled` frame reaching the bridge → the `call.ringing` pop received
by the agent's websocket client, with 1,000 agents connected, beside the same path with every
customer card already loaded (the reference), in one run.

Everything runs in one process on loopback against a real PostgreSQL (a throw-away database
on `CRM_BRIDGE_TEST_PG`, default postgresql://postgres@127.0.0.1:5432/postgres):
1000 agents and their devices, `--customers` customers with orders and history, each its own
phone; a real `PopHub`, 1000 real websocket clients past hello/welcome. Each call is the
recorded `regular-answered` trace with fresh Uniqueids/Linkedid, its own caller and the target
agent's device substituted. As on the PBX, the call is routed first (the `RouteService` the
AGI server uses: caller lookup, rules, decision recorded) and then its frames go through the
AMI parser, `decode_event`, the `CallTracker`, then `hub.submit()`. The clock starts when the
AgentCalled frame's bytes are handed to the parser and stops when the client's `recv()`
returns the pop.

Two paths, interleaved over `--rounds` rounds (their order alternates): `real` (cards as the
bridge gets them) and `preloaded` (the hub's card and route sources answer from memory: the
floor of this path). Each round runs `sequential` (one call at a time, all agents connected and
idle) and `burst` (the AgentCalled frames of 1000 calls, one per agent, fed back to back).
Prints p50/p99 per path, the ratios real/preloaded and the load average.

    .venv/bin/python bench/pop_latency.py [--agents 1000] [--calls 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from websockets.asyncio.client import ClientConnection, connect

from bridge.ami.decode import decode_event
from bridge.ami.protocol import AmiParser
from bridge.config import Config, build_config
from bridge.crm.agents import hash_token
from bridge.crm.directory import PostgresDirectory
from bridge.crm.roster import AgentRoster
from bridge.db.migrate import apply_migrations
from bridge.db.pool import connect as db_connect
from bridge.db.pool import create_pool
from bridge.models import InboundCall
from bridge.pops.card import CustomerCard, load_card
from bridge.pops.hub import PopHub
from bridge.pops.sources import PostgresCards, build_pop_hub
from bridge.routing.rules import Rule
from bridge.routing.service import PostgresDecisionLog, RouteService
from bridge.tracker.tracker import CallTracker

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT / "tests" / "fixtures" / "asterisk-traces" / "regular-answered" / "ami.log"
ADMIN_URL = os.environ.get("CRM_BRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
FIRST_DEVICE = 6000
TRACE_CALLER = b"+15551230002"


def caller_of(customer: int) -> str:
    return f"+1555123{customer:04d}"


def call_frames(template: bytes, n: int, device: str, caller: str) -> tuple[list[bytes], int]:
    """The trace's frames for call `n` on `device` from `caller`; index of AgentCalled."""
    data = template.replace(b"1795464251.", f"{1_900_000_000 + n}.".encode())
    data = data.replace(TRACE_CALLER, caller.encode())
    data = re.sub(rb"(?<![0-9])1001(?![0-9])", device.encode(), data)
    chunks = [c + b"\r\n\r\n" for c in data.split(b"\r\n\r\n") if c.strip()]
    frames = [c for c in chunks if c.startswith(b"Event: ")]
    called = next(i for i, f in enumerate(frames) if f.startswith(b"Event: AgentCalled\r\n"))
    return frames, called


class Feeder:
    """Bytes → parser → decode → tracker → hub, like the live AMI link."""

    def __init__(self, hub: Any, pattern: re.Pattern[str]) -> None:
        self.hub = hub
        self.parser = AmiParser()
        self.tracker = CallTracker(pattern)
        self.clock = datetime(2026, 1, 1, tzinfo=UTC)

    async def feed(self, data: bytes) -> None:
        for frame in self.parser.feed(data):
            self.clock += timedelta(milliseconds=1)
            event = decode_event(frame, self.clock)
            if event is None:
                continue
            for call_event in self.tracker.feed(event):
                await self.hub.submit(call_event)
        for call_event in self.tracker.flush():
            await self.hub.submit(call_event)


class NoRules:
    async def current(self) -> list[Rule]:
        return []


async def setup_db(url: str, agents: int, customers: int) -> dict[str, str]:
    conn = await db_connect(url)
    try:
        await apply_migrations(conn)
        tokens = {}
        rows = []
        for i in range(agents):
            agent_id = f"a{FIRST_DEVICE + i}"
            token = secrets.token_urlsafe(32)
            tokens[str(FIRST_DEVICE + i)] = token
            rows.append((agent_id, f"Agent {i}", "agent", str(FIRST_DEVICE + i), hash_token(token)))
        await conn.copy_records_to_table(
            "agents", records=rows, columns=["id", "name", "role", "device", "token_hash"]
        )
        await conn.execute(
            "INSERT INTO customers (id, name, attributes)"
            " SELECT 'cust-' || i, 'Customer ' || i,"
            ' \'{"lifetime_value": 1200, "tier": "gold"}\''
            " FROM generate_series(0, $1 - 1) i",
            customers,
        )
        await conn.execute(
            "INSERT INTO customer_phones SELECT '+1555123' || lpad(i::text, 4, '0'), 'cust-' || i"
            " FROM generate_series(0, $1 - 1) i",
            customers,
        )
        await conn.execute(
            "INSERT INTO customer_tags SELECT 'cust-' || i, 'vip'"
            " FROM generate_series(0, $1 - 1) i",
            customers,
        )
        await conn.execute(
            "INSERT INTO orders (customer_id, reference, product, amount)"
            " SELECT 'cust-' || i, 'o-' || i || '-' || k, 'Router', 99"
            " FROM generate_series(0, $1 - 1) i, generate_series(1, 8) k",
            customers,
        )
        await conn.execute(
            "INSERT INTO service_history (customer_id, summary, outcome)"
            " SELECT 'cust-' || i, 'line check', 'answered'"
            " FROM generate_series(0, $1 - 1) i, generate_series(1, 8) k",
            customers,
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return tokens


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def show(label: str, ms: list[float]) -> None:
    print(
        f"  {label:<21} n={len(ms):5d}  p50={pct(ms, 50):7.2f} ms  p90={pct(ms, 90):7.2f} ms"
        f"  p99={pct(ms, 99):7.2f} ms  max={max(ms):7.2f} ms  mean={statistics.fmean(ms):6.2f} ms"
    )


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@contextmanager
def preloaded(hub: PopHub, cards: dict[str, CustomerCard]) -> Iterator[None]:
    """The reference: the hub's card and route sources answer from memory at once."""
    route = {"rule": "default", "queue": "support", "priority": 0, "degraded": False}

    async def card_for_caller(caller: str) -> CustomerCard | None:
        return cards.get(caller)

    async def card_for_call(call_id: str, caller: str) -> CustomerCard | None:
        return cards.get(caller)

    async def route_for_call(call_id: str) -> dict[str, Any] | None:
        return route

    names = ("_card_for_caller", "_card_for_call", "_route_for_call")
    saved = {name: getattr(hub, name, None) for name in names}
    hub._card_for_caller = card_for_caller  # type: ignore[attr-defined]
    if hasattr(hub, "_card_for_call"):
        hub._card_for_call = card_for_call  # type: ignore[attr-defined]
    hub._route_for_call = route_for_call  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for name, value in saved.items():
            if hasattr(hub, name):
                setattr(hub, name, value)


class Bench:
    def __init__(
        self, hub: PopHub, route: RouteService, config: Config, devices: list[str], customers: int
    ) -> None:
        self.hub = hub
        self.route = route
        self.feeder = Feeder(hub, config.device_regex)
        self.devices = devices
        self.customers = customers
        self.template = TRACE.read_bytes()
        self.n = 0
        self.received: dict[str, float] = {}
        self.waiters: dict[str, asyncio.Future[None]] = {}

    def on_message(self, raw: str | bytes, now: float) -> None:
        msg = json.loads(raw)
        if msg.get("type") == "call.ringing":
            self.received[msg["call_id"]] = now
            fut = self.waiters.pop(msg["call_id"], None)
            if fut is not None and not fut.done():
                fut.set_result(None)

    async def prepare(self, device: str) -> tuple[list[bytes], int, str]:
        """A new call from the next customer to `device`, routed as the AGI server does, fed
        up to (not including) its AgentCalled frame."""
        n = self.n
        self.n += 1
        caller = caller_of(n % self.customers)
        frames, called = call_frames(self.template, n, device, caller)
        call_id = f"{1_900_000_000 + n}.6"
        call = InboundCall(
            raw_caller=caller,
            caller=caller,
            caller_name="",
            did="18005550100",
            at=datetime.now(UTC),
            channel=f"PJSIP/trunk-{n:08x}",
            uniqueid=call_id,
            linkedid=call_id,
        )
        decision = await self.route.route(call)
        await self.route.record(call, decision, None)
        await self.route.drain()  # the PBX rings the agent well after the AGI answer
        await self.feeder.feed(b"".join(frames[:called]))
        return frames, called, call_id

    async def sequential(self, calls: int) -> list[float]:
        out: list[float] = []
        for k in range(calls):
            frames, called, call_id = await self.prepare(self.devices[k % len(self.devices)])
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waiters[call_id] = fut
            t0 = time.perf_counter()
            await self.feeder.feed(frames[called])
            await asyncio.wait_for(fut, 10)
            out.append((self.received[call_id] - t0) * 1000)
            await self.feeder.feed(b"".join(frames[called + 1 :]))
        return out

    async def burst(self) -> list[float]:
        calls = [await self.prepare(device) for device in self.devices]
        started: dict[str, float] = {}
        futs = []
        for frames, called, call_id in calls:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waiters[call_id] = fut
            futs.append(fut)
            started[call_id] = time.perf_counter()
            await self.feeder.feed(frames[called])
        await asyncio.wait_for(asyncio.gather(*futs), 60)
        out = [(self.received[c] - started[c]) * 1000 for _, _, c in calls]
        for frames, called, _ in calls:
            await self.feeder.feed(b"".join(frames[called + 1 :]))
        return out


async def run(agents: int, calls: int, customers: int, rounds: int) -> None:
    name = f"crmbridge_bench_{os.getpid()}"
    base = ADMIN_URL.rpartition("/")[0]
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = f"{base}/{name}"
    clients: list[ClientConnection] = []
    readers: list[asyncio.Task[None]] = []
    pool = None
    hub = None
    directory = None
    route = None
    print(f"load average at start: {load()}")
    try:
        tokens = await setup_db(url, agents, customers)
        pool = await create_pool(url, min_size=2, max_size=10)
        config = build_config({"pops": {"port": 0}}, {}, runtime=False)
        directory = PostgresDirectory(pool)
        roster = AgentRoster(pool, directory.listener)  # shares the directory's LISTEN
        route = RouteService(directory, NoRules(), config, decisions=PostgresDecisionLog(pool))
        cards = PostgresCards(pool, directory, config.pbx.default_region)  # as bridge/app.py
        route.on_routed(cards.routed)
        hub = build_pop_hub(pool, config, directory, roster, cards=cards)
        await directory.start()  # LISTEN, so the caller lookup is cached as in production
        await roster.start()
        await hub.start()
        preloaded_cards: dict[str, CustomerCard] = {}
        for i in range(customers):
            card = await load_card(pool, f"cust-{i}")
            assert card is not None
            preloaded_cards[caller_of(i)] = card
        bench = Bench(hub, route, config, sorted(tokens), customers)

        async def reader(ws: ClientConnection) -> None:
            async for raw in ws:
                bench.on_message(raw, time.perf_counter())

        t = time.perf_counter()
        sem = asyncio.Semaphore(100)

        async def open_client(device: str) -> None:
            async with sem:
                ws = await connect(f"ws://127.0.0.1:{hub.port}", compression=None)
                await ws.send(json.dumps({"type": "hello", "token": tokens[device]}))
                assert json.loads(await ws.recv())["type"] == "welcome"
                clients.append(ws)
                readers.append(asyncio.create_task(reader(ws)))

        await asyncio.gather(*(open_client(d) for d in tokens))
        print(f"{hub.connected_agents} agents connected in {time.perf_counter() - t:.2f} s")

        results: dict[tuple[str, str], list[float]] = {}
        for r in range(rounds):
            order = ("real", "preloaded") if r % 2 == 0 else ("preloaded", "real")
            for path in order:
                if path == "real":
                    seq, burst = await bench.sequential(calls), await bench.burst()
                else:
                    with preloaded(hub, preloaded_cards):
                        seq, burst = await bench.sequential(calls), await bench.burst()
                results.setdefault((path, "sequential"), []).extend(seq)
                results.setdefault((path, "burst"), []).extend(burst)
                print(
                    f"round {r + 1} {path:<9}: sequential p99 {pct(seq, 99):7.2f} ms,"
                    f" burst p50 {pct(burst, 50):7.2f} ms   (load {load()})"
                )

        print(
            f"pop latency, AgentCalled frame in -> call.ringing received, {agents} agents,"
            f" {customers} customers, {rounds} interleaved rounds"
        )
        for (path, kind), ms in results.items():
            show(f"{path} {kind}", ms)
        seq_ratio = pct(results[("real", "sequential")], 99) / pct(
            results[("preloaded", "sequential")], 99
        )
        burst_ratio = pct(results[("real", "burst")], 50) / pct(results[("preloaded", "burst")], 50)
        print(
            f"ratio real/preloaded: sequential p99 x{seq_ratio:.2f}, burst p50 x{burst_ratio:.2f}"
        )
        print(f"load average at end: {load()}")
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)
        if route is not None:
            await route.stop()
        if hub is not None:
            await hub.stop()
        if directory is not None:
            await directory.stop()
        if pool is not None:
            await pool.close()
        admin = await asyncpg.connect(ADMIN_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=500, help="sequential calls per round")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.agents, args.calls, args.customers, args.rounds))


if __name__ == "__main__":
    sys.exit(main())
