"""`run_bridge` with `[ari] enabled`: the composition root starts the Stasis app on the real CRM."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from bridge.config import build_config
from bridge.plugin import Context
from bridge.runtime import run_bridge
from tests.ari.fake_ari import PASSWORD, USERNAME, FakeAri, channel_json, stasis_start
from tests.crm.fixture_crm import ALICE, load_trace_crm


async def test_run_bridge_routes_a_stasis_call_and_stops_cleanly(
    fake: FakeAri, pool: asyncpg.Pool[Any], database_url: str
) -> None:
    await load_trace_crm(pool)
    config = build_config(
        {
            "database": {"url": database_url},
            "ami": {"enabled": False},
            "agi": {"port": 0},
            "http": {"port": 0},
            "pops": {"port": 0},
            "ari": {"enabled": True, "url": fake.url, "username": USERNAME, "password": PASSWORD},
        },
        environ={},
    )
    stop = asyncio.Event()
    ready: asyncio.Future[Context] = asyncio.get_running_loop().create_future()
    runner = asyncio.create_task(run_bridge(config, stop=stop, started=ready.set_result))
    try:
        async with asyncio.timeout(20):
            rt = await asyncio.shield(ready)
        ari = rt.get("ari")
        async with asyncio.timeout(10):
            await ari.wait_connected()
        fake.park(channel_json("run.1", number="+15551230001"), linkedid="run.0")
        await fake.send(stasis_start(fake.channels["run.1"]))
        await fake.wait_for(lambda: "run.1" in fake.continued())
        variables = fake.variables_of("run.1")
        assert variables["BRIDGE_QUEUE"] == "senior"
        assert variables["BRIDGE_CUSTOMER_ID"] == ALICE
        assert variables["BRIDGE_RECORDING"] == "run.0.wav"
        assert rt.health()["ari"].state == "up"
    finally:
        stop.set()
        async with asyncio.timeout(20):
            await runner
    # the route service drains its decision writes when the bridge stops
    row = await pool.fetchrow(
        "SELECT linkedid, queue FROM route_decisions WHERE uniqueid = 'run.1'"
    )
    assert row is not None and (row["linkedid"], row["queue"]) == ("run.0", "senior")
