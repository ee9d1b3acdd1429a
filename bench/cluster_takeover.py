"""How long the jobs' lease stays unowned when its holder dies (issue 18's `takeover_s`).

    .venv/bin/python bench/cluster_takeover.py [--takeover-s 5] [--rounds 5]

Two `Lease`s in this process, each on its own connection, as two bridge instances: the
holder "dies" as under SIGKILL (its loop stops, its socket is cut, PostgreSQL ends the
session and frees the advisory lock), and the time until the standby holds the lease is
measured. The design bound is `takeover_s`: the standby tries every `takeover_s / 3`.

Needs a PostgreSQL server: CRM_BRIDGE_TEST_PG (default postgresql://postgres@127.0.0.1:5432/postgres);
a throw-away database is created, migrated and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import time

import asyncpg

from bridge.cluster import Instance, Lease
from bridge.db.migrate import apply_migrations
from bridge.db.pool import connect

ADMIN = os.environ.get("CRM_BRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


async def one_round(url: str, takeover_s: float, n: int) -> float:
    leases = [
        Lease(lambda: connect(url), Instance(f"{name}-{n}", "bench", 0), takeover_s=takeover_s)
        for name in ("holder", "standby")
    ]
    holder, standby = leases
    await holder.start()
    await standby.start()
    assert holder.held and not standby.held
    assert holder._task is not None and holder._conn is not None
    holder._task.cancel()
    holder._conn.terminate()
    died = time.perf_counter()
    while not standby.held:
        await standby.wait_beats(standby._beats + 1)
    took = time.perf_counter() - died
    await standby.stop()
    holder._conn = None
    return took


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--takeover-s", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    name = f"crmbridge_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN.rpartition("/")[0] + "/" + name
    try:
        conn = await connect(url)
        await apply_migrations(conn)
        await conn.close()
        times = [await one_round(url, args.takeover_s, n) for n in range(args.rounds)]
        print(
            f"takeover_s {args.takeover_s:g}: standby held the lease after "
            f"min {min(times):.2f} s, median {statistics.median(times):.2f} s, "
            f"max {max(times):.2f} s over {len(times)} kills"
        )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
