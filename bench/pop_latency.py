"""Pop latency: an `AgentCalled` frame reaching the bridge → the `call.ringing` pop received
by the agent's websocket client, with 1,000 agents connected.

Everything runs in one process on loopback against a real PostgreSQL (a throw-away database
on `CRM_BRIDGE_TEST_PG`, default postgresql://postgres@127.0.0.1:5432/postgres):
1000 agents and their devices, the caller as a customer with orders and history; a real
`PopHub`, 1000 real websocket clients past hello/welcome. Each call is the recorded
`regular-answered` trace with fresh Uniqueids/Linkedid and the target agent's device
substituted; its frames go through the AMI parser, `decode_event`, the `CallTracker`, then
`hub.submit()` (what the AMI link's subscriber calls). The clock starts when the AgentCalled
frame's bytes are handed to the parser and stops when the client's `recv()` returns the pop.
Included: the caller lookup (directory, cached after the first call as in production), the
customer card query (once per call, not cached) and the participant write (async).

Two runs: `sequential` (one call at a time, all 1000 agents connected and idle) and
`burst` (the AgentCalled frames of 1000 calls, one per agent, fed back to back).

    .venv/bin/python bench/pop_latency.py [--agents 1000] [--calls 2000]
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from websockets.asyncio.client import ClientConnection, connect

from bridge.ami.decode import decode_event
from bridge.ami.protocol import AmiParser
from bridge.config import build_config
from bridge.crm.agents import hash_token
from bridge.crm.directory import PostgresDirectory
from bridge.crm.roster import AgentRoster
from bridge.db.migrate import apply_migrations
from bridge.db.pool import connect as db_connect
from bridge.db.pool import create_pool
from bridge.pops.sources import build_pop_hub
from bridge.tracker.tracker import CallTracker

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT / "tests" / "fixtures" / "asterisk-traces" / "regular-answered" / "ami.log"
ADMIN_URL = os.environ.get("CRM_BRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
FIRST_DEVICE = 6000


def call_frames(template: bytes, n: int, device: str) -> tuple[list[bytes], int]:
    """The trace's frames for call `n` on `device`; index of the AgentCalled frame."""
    data = template.replace(b"1795464251.", f"{1_900_000_000 + n}.".encode())
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


async def setup_db(url: str, agents: int) -> dict[str, str]:
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
            "INSERT INTO customers (id, name, attributes) VALUES"
            " ('cust-bob', 'Bob Li', '{\"lifetime_value\": 1200, \"tier\": \"gold\"}')"
        )
        await conn.execute("INSERT INTO customer_phones VALUES ('+15551230002', 'cust-bob')")
        await conn.execute("INSERT INTO customer_tags VALUES ('cust-bob', 'vip')")
        for k in range(8):
            await conn.execute(
                "INSERT INTO orders (customer_id, reference, product, amount)"
                " VALUES ('cust-bob', $1, 'Router', 99)",
                f"o-{k}",
            )
            await conn.execute(
                "INSERT INTO service_history (customer_id, summary, outcome)"
                " VALUES ('cust-bob', 'line check', 'answered')"
            )
    finally:
        await conn.close()
    return tokens


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def show(label: str, ms: list[float]) -> None:
    print(
        f"{label:<11} n={len(ms):5d}  p50={pct(ms, 50):7.2f} ms  p90={pct(ms, 90):7.2f} ms"
        f"  p99={pct(ms, 99):7.2f} ms  max={max(ms):7.2f} ms  mean={statistics.fmean(ms):6.2f} ms"
    )


async def run(agents: int, calls: int) -> None:
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
    try:
        tokens = await setup_db(url, agents)
        pool = await create_pool(url, min_size=2, max_size=10)
        config = build_config({"pops": {"port": 0}}, {}, runtime=False)
        directory = PostgresDirectory(pool)
        roster = AgentRoster(pool, directory.listener)  # shares the directory's LISTEN
        await directory.start()  # LISTEN, so the caller lookup is cached as in production
        await roster.start()
        hub = build_pop_hub(pool, config, directory, roster)
        await hub.start()
        received: dict[str, float] = {}  # call id -> time the ringing pop arrived
        waiters: dict[str, asyncio.Future[None]] = {}

        async def reader(ws: ClientConnection) -> None:
            async for raw in ws:
                now = time.perf_counter()
                msg = json.loads(raw)
                if msg.get("type") == "call.ringing":
                    received[msg["call_id"]] = now
                    fut = waiters.pop(msg["call_id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(None)

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

        template = TRACE.read_bytes()
        feeder = Feeder(hub, config.device_regex)
        devices = sorted(tokens)

        # --- sequential: one call at a time ------------------------------------------------
        seq: list[float] = []
        for n in range(calls):
            frames, called = call_frames(template, n, devices[n % len(devices)])
            call_id = f"{1_900_000_000 + n}.6"
            await feeder.feed(b"".join(frames[:called]))
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            waiters[call_id] = fut
            t0 = time.perf_counter()
            await feeder.feed(frames[called])
            await asyncio.wait_for(fut, 10)
            seq.append((received[call_id] - t0) * 1000)
            await feeder.feed(b"".join(frames[called + 1 :]))

        # --- burst: 1000 calls ring 1000 agents back to back -------------------------------
        burst_calls = [
            (
                call_frames(template, calls + k, devices[k % len(devices)]),
                f"{1_900_000_000 + calls + k}.6",
            )
            for k in range(len(devices))
        ]
        for (frames, called), _ in burst_calls:
            await feeder.feed(b"".join(frames[:called]))
        started: dict[str, float] = {}
        futs = []
        for (frames, called), call_id in burst_calls:
            fut = asyncio.get_running_loop().create_future()
            waiters[call_id] = fut
            futs.append(fut)
            started[call_id] = time.perf_counter()
            await feeder.feed(frames[called])
        await asyncio.wait_for(asyncio.gather(*futs), 60)
        burst = [(received[c] - started[c]) * 1000 for _, c in burst_calls]
        for (frames, called), _ in burst_calls:
            await feeder.feed(b"".join(frames[called + 1 :]))

        print(
            f"pop latency, AgentCalled frame in -> call.ringing received, {agents} agents connected"
        )
        show("sequential", seq)
        show("burst", burst)
        print(
            f"ratio p99/p50 sequential={pct(seq, 99) / pct(seq, 50):.2f}"
            f"  burst p50/sequential p50={pct(burst, 50) / pct(seq, 50):.1f}"
        )
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)
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
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(run(args.agents, args.calls))


if __name__ == "__main__":
    sys.exit(main())
