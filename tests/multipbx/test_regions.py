"""Each PBX's national numbers read in its own `default_region`: a call's PBX is its call id's
prefix, an agent's its `pbx`. East is a US PBX, west a UK one; `07700 900123` is a UK mobile
(+447700900123) and means nobody in the US."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bridge.config import Config, build_config
from bridge.connectors.builtin import BuiltinConnector
from bridge.crm.agents import create_agent
from bridge.dial.callbacks import pending_callbacks
from bridge.models import CallEnded
from bridge.pbx.regions import PbxRegions
from bridge.pops.agent_routes import AgentDeps, setup_agent_routes
from bridge.records.wiring import build_delivery
from bridge.web import HttpServer, make_web_app
from tests.records.factory import make_ended

UK_MOBILE = "07700 900123"
UK_E164 = "+447700900123"


def two_regions() -> Config:
    entries = [
        {"name": name, "default_region": region, "ami": {"username": "u", "secret": "s"}}
        for name, region in (("east", "US"), ("west", "GB"))
    ]
    return build_config({"pbx": entries}, {}, runtime=False)


def test_a_call_and_an_agent_read_in_their_own_pbxs_region() -> None:
    regions = PbxRegions.of(two_regions())
    assert regions.of_call("west:1700000000.42") == "GB"
    assert regions.of_call("east:1700000000.42") == "US"
    assert regions.of_pbx("west") == "GB" and regions.of_pbx("east") == "US"
    # no PBX named, or one no longer configured: the first PBX's region
    assert regions.of_call("1700000000.42") == regions.of_pbx("") == "US"
    assert regions.of_call("gone:1.1") == regions.of_pbx("gone") == "US"


def test_a_single_pbx_reads_every_number_in_its_region() -> None:
    regions = PbxRegions.of(build_config({"pbx": {"default_region": "GB"}}, {}, runtime=False))
    assert regions.of_call("1700000000.42") == regions.of_pbx("") == "GB"
    assert regions.of_call("east:1.1") == "GB"


def outbound(call_id: str) -> CallEnded:
    ended = make_ended(call_id, caller=UK_MOBILE, device=None)
    return dataclasses.replace(
        ended, summary=dataclasses.replace(ended.summary, direction="outbound")
    )


async def add_uk_customer(pool: asyncpg.Pool[Any]) -> None:
    await pool.execute("INSERT INTO customers (id, name) VALUES ('c-uk', 'Brit Ltd')")
    await pool.execute(
        "INSERT INTO customer_phones (e164, customer_id) VALUES ($1, 'c-uk')", UK_E164
    )


async def test_the_record_writer_reads_a_dialled_number_in_the_calls_pbx_region(
    pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    await add_uk_customer(pool)
    writer, _ = build_delivery(
        two_regions(), pool, connector=BuiltinConnector(), alerts=None, spool_dir=tmp_path
    )
    await writer.start()
    try:
        await writer.submit_many([outbound("west:1.1"), outbound("east:1.1")])
        await writer.wait_idle()
    finally:
        await writer.stop()
    rows = dict(await pool.fetch("SELECT call_id, customer_id FROM call_records"))
    assert rows == {"west:1.1": "c-uk", "east:1.1": None}


async def test_the_callbacks_list_reads_each_callers_number_in_its_pbx_region(
    pool: asyncpg.Pool[Any],
) -> None:
    now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    for call_id in ("west:1.1", "east:2.2"):
        await pool.execute(
            "INSERT INTO call_records (call_id, direction, caller, queue, started_at, outcome)"
            " VALUES ($1, 'inbound', $2, 'support', $3, 'abandoned')",
            call_id,
            UK_MOBILE if call_id.startswith("west") else "5551230002",
            now - timedelta(hours=1),
        )
    regions = PbxRegions.of(two_regions())
    rows = await pending_callbacks(pool, now=now, days=7, region=regions.of_call)
    assert {row.call_id: row.caller for row in rows} == {
        "west:1.1": UK_E164,
        "east:2.2": "+15551230002",
    }


async def test_a_number_typed_on_the_desk_reads_in_the_agents_pbx_region(
    pool: asyncpg.Pool[Any],
) -> None:
    tokens = {
        pbx: await create_agent(pool, f"a-{pbx}", pbx.title(), "agent", "1001", pbx=pbx)
        for pbx in ("east", "west")
    }
    deps = AgentDeps(pool, 8765, regions=PbxRegions.of(two_regions()))
    server = HttpServer(make_web_app(setups=[lambda app: setup_agent_routes(app, deps)]), port=0)
    await server.start()
    created: dict[str, Any] = {}
    try:
        async with aiohttp.ClientSession() as session:
            for pbx, token in tokens.items():
                async with session.post(
                    server.url + "/agent/api/customers",
                    data=json.dumps({"name": f"Caller of {pbx}", "phone": UK_MOBILE}),
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "application/json",
                    },
                ) as answer:
                    created[pbx] = (answer.status, await answer.json())
    finally:
        await server.stop()
    status, west = created["west"]
    assert status == 201 and west["phones"] == [UK_E164]
    # the same digits typed by east's agent are no US number
    assert created["east"][0] == 400 and created["east"][1]["field"] == "phone"
