"""ARI mode with the real RouteService over the real PostgreSQL CRM of the traces."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bridge.crm.directory import PostgresDirectory
from bridge.routing.service import PostgresDecisionLog, RouteService
from bridge.routing.store import RuleStore
from tests.ari.conftest import RunApp, ari_config
from tests.ari.fake_ari import FakeAri, channel_json, stasis_start
from tests.ari.test_stasis import linkedid_in_ami_log, trace_lines
from tests.crm.fixture_crm import ALICE, ZHANG, load_trace_crm


@pytest.fixture
async def service(pool: asyncpg.Pool[Any], fake: FakeAri) -> AsyncIterator[RouteService]:
    await load_trace_crm(pool)
    directory = PostgresDirectory(pool)
    rules = RuleStore(pool)
    await directory.start()
    await rules.start()
    route = RouteService(
        directory,
        rules,
        ari_config(fake.url, budget_ms=300),
        decisions=PostgresDecisionLog(rules.pool),
    )
    try:
        yield route
    finally:
        await route.stop()
        await rules.stop()
        await directory.stop()


async def test_ari_vip_trace_routes_alice_to_senior_and_records_the_decision(
    fake: FakeAri, run_app: RunApp, service: RouteService, pool: asyncpg.Pool[Any], traces: Path
) -> None:
    lines = trace_lines(traces)
    start = json.loads(lines[0])
    channel_id = start["channel"]["id"]
    fake.park(start["channel"], linkedid=linkedid_in_ami_log(traces, channel_id))
    async with run_app(service) as app:
        await fake.send(lines[0])
        await fake.wait_for(lambda: channel_id in fake.continued())
        await app.idle()
    assert await service.drain(within_s=5)
    assert fake.variables_of(channel_id) == {
        "BRIDGE_QUEUE": "senior",
        "BRIDGE_PRIORITY": "0",
        "BRIDGE_RULE": "vip",
        "BRIDGE_CUSTOMER_ID": ALICE,
        "BRIDGE_CUSTOMER_NAME": "Alice Chen",
        "BRIDGE_TAGS": "vip",
        "BRIDGE_DEGRADED": "0",
        "BRIDGE_RECORDING": "1795464289.66.wav",
    }
    row = await pool.fetchrow("SELECT * FROM route_decisions WHERE uniqueid = $1", channel_id)
    assert row is not None
    assert (row["linkedid"], row["queue"], row["customer_id"], row["recording"]) == (
        "1795464289.66",
        "senior",
        ALICE,
        "1795464289.66.wav",
    )
    assert row["did"] == "18005550100"


async def test_utf8_customer_and_unknown_caller(
    fake: FakeAri, run_app: RunApp, service: RouteService
) -> None:
    fake.park(channel_json("z.1", number="+8613800138000", name="张伟"))
    fake.park(channel_json("u.1", number="+15559990000", name="Nobody"))
    fake.park(channel_json("a.1", number="anonymous", name=""))
    async with run_app(service) as app:
        for channel_id in ("z.1", "u.1", "a.1"):
            await fake.send(stasis_start(fake.channels[channel_id]))
        await fake.wait_for(lambda: len(fake.continued()) == 3)
        await app.idle()
    zhang = fake.variables_of("z.1")
    assert (zhang["BRIDGE_QUEUE"], zhang["BRIDGE_CUSTOMER_ID"], zhang["BRIDGE_CUSTOMER_NAME"]) == (
        "senior",
        ZHANG,
        "张伟",
    )
    assert sorted(zhang["BRIDGE_TAGS"].split(",")) == ["complaint-risk", "vip"]
    for channel_id in ("u.1", "a.1"):
        variables = fake.variables_of(channel_id)
        assert variables["BRIDGE_QUEUE"] == "support"
        assert variables["BRIDGE_RULE"] == "default"
        assert variables["BRIDGE_CUSTOMER_ID"] == ""
        assert variables["BRIDGE_DEGRADED"] == "0"


async def test_crm_blocked_by_a_table_lock_gives_default_degraded_within_budget(
    fake: FakeAri, run_app: RunApp, service: RouteService, database_url: str
) -> None:
    loop = asyncio.get_running_loop()
    times: dict[str, float] = {}
    fake.on_rest = lambda call: times.setdefault(call.action, loop.time())
    fake.park(channel_json("locked.1", number="+15551230001"))
    blocker = await asyncpg.connect(database_url)
    try:
        async with blocker.transaction():
            # Readers of customer_phones now wait: the CRM is "slow".
            await blocker.execute("LOCK TABLE customer_phones IN ACCESS EXCLUSIVE MODE")
            async with run_app(service) as app:
                sent = loop.time()
                await fake.send(stasis_start(fake.channels["locked.1"]))
                await fake.wait_for(lambda: "locked.1" in fake.continued(), within=5)
                await app.idle()
    finally:
        await blocker.close()
    variables = fake.variables_of("locked.1")
    assert variables["BRIDGE_QUEUE"] == "support"
    assert variables["BRIDGE_DEGRADED"] == "1"
    assert variables["BRIDGE_CUSTOMER_ID"] == ""
    assert times["continue"] - sent < 0.3 + 1.5  # budget + generous margin
