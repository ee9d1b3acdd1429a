"""Memory per idle agent websocket: the pop hub holding N agents past hello/welcome, beside a
bare `websockets` server holding N idle connections after the same exchange (the floor).

Each server runs in its own child process (so the clients' memory is not counted); this
process opens the N client connections. The figure is the server's RSS after the N
connections minus its RSS before them (after `gc.collect()`), divided by N. `--rounds`
rounds, hub and bare interleaved (their order alternates); prints the median per connection,
the ratio hub/bare and the load average. The hub's agents are real roster rows in a
throw-away database on `CRM_BRIDGE_TEST_PG` (default postgresql://postgres@127.0.0.1:5432).

    .venv/bin/python bench/pop_memory.py [--connections 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import secrets
import statistics
import sys
from typing import Any

import asyncpg
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from bridge.crm.agents import hash_token
from bridge.db.migrate import apply_migrations
from bridge.db.pool import connect as db_connect
from bridge.db.pool import create_pool

ADMIN_URL = os.environ.get("CRM_BRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
FIRST_DEVICE = 6000


def rss_kib() -> int:
    gc.collect()
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


async def bare_server() -> Any:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(json.dumps({"type": "welcome", "agent": "x"}))
        await ws.wait_closed()

    return await serve(handler, "127.0.0.1", 0, compression=None)


async def child(kind: str, url: str) -> None:
    """The server process: prints its port, then answers `rss` lines until `quit`."""
    from bridge.config import build_config
    from bridge.crm.directory import PostgresDirectory
    from bridge.crm.roster import AgentRoster
    from bridge.pops.sources import build_pop_hub

    stop: list[Any] = []
    if kind == "bare":
        server = await bare_server()
        port = server.sockets[0].getsockname()[1]
        stop.append(server.close)
    else:
        pool = await create_pool(url, min_size=1, max_size=4)
        config = build_config({"pops": {"port": 0, "max_connections": 100_000}}, {}, runtime=False)
        directory = PostgresDirectory(pool)
        roster = AgentRoster(pool, directory.listener)
        hub = build_pop_hub(pool, config, directory, roster)
        await directory.start()
        await roster.start()
        await hub.start()
        port = hub.port
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(port, flush=True)
    while line := (await reader.readline()).strip():
        if line == b"rss":
            print(rss_kib(), flush=True)
        elif line == b"quit":
            break
    os._exit(0)  # no orderly shutdown needed: the parent closes the clients


async def setup_db(url: str, agents: int) -> dict[str, str]:
    conn = await db_connect(url)
    try:
        await apply_migrations(conn)
        tokens = {}
        rows = []
        for i in range(agents):
            token = secrets.token_urlsafe(32)
            tokens[str(FIRST_DEVICE + i)] = token
            rows.append(
                (
                    f"a{FIRST_DEVICE + i}",
                    f"Agent {i}",
                    "agent",
                    str(FIRST_DEVICE + i),
                    hash_token(token),
                )
            )
        await conn.copy_records_to_table(
            "agents", records=rows, columns=["id", "name", "role", "device", "token_hash"]
        )
    finally:
        await conn.close()
    return tokens


async def measure(kind: str, url: str, tokens: dict[str, str]) -> float:
    """KiB of server RSS per idle connection."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--child",
        kind,
        "--url",
        url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None

    async def ask() -> int:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"rss\n")
        await proc.stdin.drain()
        return int(await proc.stdout.readline())

    clients: list[ClientConnection] = []
    try:
        port = int(await proc.stdout.readline())
        # One connection first, so that what every server does once is not counted.
        warm = await connect(f"ws://127.0.0.1:{port}", compression=None)
        await warm.send(json.dumps({"type": "hello", "token": next(iter(tokens.values()))}))
        await warm.recv()
        before = await ask()
        sem = asyncio.Semaphore(100)

        async def open_client(token: str) -> None:
            async with sem:
                ws = await connect(f"ws://127.0.0.1:{port}", compression=None)
                await ws.send(json.dumps({"type": "hello", "token": token}))
                assert json.loads(await ws.recv())["type"] == "welcome"
                clients.append(ws)

        await asyncio.gather(*(open_client(t) for t in list(tokens.values())[1:]))
        after = await ask()
        clients.append(warm)
        return (after - before) / (len(tokens) - 1)
    finally:
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)
        proc.stdin.write(b"quit\n")
        await proc.stdin.drain()
        await proc.wait()


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def run(connections: int, rounds: int) -> None:
    name = f"crmbridge_bench_{os.getpid()}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = f"{ADMIN_URL.rpartition('/')[0]}/{name}"
    print(f"load average at start: {load()}")
    try:
        tokens = await setup_db(url, connections + 1)
        per: dict[str, list[float]] = {"hub": [], "bare": []}
        for r in range(rounds):
            for kind in ("hub", "bare") if r % 2 == 0 else ("bare", "hub"):
                kib = await measure(kind, url, tokens)
                per[kind].append(kib)
                print(f"round {r + 1} {kind:<4}: {kib:6.1f} KiB per connection   (load {load()})")
    finally:
        admin = await asyncpg.connect(ADMIN_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    hub, bare = statistics.median(per["hub"]), statistics.median(per["bare"])
    print(f"server RSS per idle websocket, {connections} connections, median of {rounds} rounds:")
    print(f"  hub {hub:.1f} KiB, bare websockets {bare:.1f} KiB, ratio hub/bare x{hub / bare:.2f}")
    print(f"load average at end: {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=("hub", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args.child, args.url))
    else:
        asyncio.run(run(args.connections, args.rounds))


if __name__ == "__main__":
    sys.exit(main())
