"""Two simulated PBXs behind one bridge, numbering their calls alike (colliding Linkedids).

Each PBX's call gets its own record under a namespaced call id, each agent is popped only
for its own PBX's device (both PBXs have an extension 2001), and one PBX's AMI going away
leaves the other's calls popped and recorded.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bridge.config import build_config
from bridge.crm.agents import create_agent
from bridge.plugin import Context as Runtime
from bridge.runtime import run_bridge
from bridge.sim import AmiServer, AmiUser, FastClock, SimPbx, lab_config
from tests.crm.fixture_crm import ALICE, load_trace_crm
from tests.test_end_to_end import free_port, hello, recv, wait_for_row

EPOCH = 1_700_000_000  # both PBXs number their channels from here: Linkedids collide


def sim(name: str, agi_port: int) -> SimPbx:
    config = lab_config(
        technology="PJSIP",
        agi_port=agi_port,
        agi_script=f"route?pbx={name}",
        ami_users=(AmiUser("bridge", f"{name}-secret"),),
        uniqueid_epoch=EPOCH,
    )
    return SimPbx(config, clock=FastClock(speed=20))


@asynccontextmanager
async def bridge(config: Any) -> AsyncIterator[Runtime]:
    stop = asyncio.Event()
    ready: asyncio.Future[Runtime] = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(run_bridge(config, stop=stop, started=ready.set_result))
    try:
        async with asyncio.timeout(30):
            await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
        yield ready.result()
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await task


def two_pbx_config(database_url: str, tmp_path: Path, agi_port: int, ports: dict[str, int]) -> Any:
    entries = [
        {
            "name": name,
            "reconcile_s": 0,
            "ami": {"port": port, "username": "bridge", "secret": f"{name}-secret"},
        }
        for name, port in ports.items()
    ]
    return build_config(
        {
            "database": {"url": database_url, "pool_size": 3},
            "agi": {"port": agi_port, "budget_ms": 2000},
            "http": {"port": 0},
            "pops": {"port": 0},
            "records": {"spool_dir": str(tmp_path / "spool")},
            "ami": {"keepalive_s": 1.0, "reconnect_max_s": 1.0},
            "pbx": entries,
        },
        {},
    )


async def seniors(pool: asyncpg.Pool[Any]) -> dict[str, str]:
    """Agents on both PBXs with the same extensions: {agent id: token}."""
    await load_trace_crm(pool)  # customers and the vip rule (its agents are on no PBX here)
    return {
        f"{pbx}-{ext}": await create_agent(pool, f"{pbx}-{ext}", f"{pbx} {ext}", "agent", ext, pbx)
        for pbx in ("east", "west")
        for ext in ("2001", "2002")
    }


class RefusedWatch(logging.Handler):
    """Set `seen` once the AMI link logs that a connection to `port` was refused."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port
        self.seen = asyncio.Event()
        logging.getLogger("bridge.ami.link").addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "Connect call failed" in text and f", {self.port})" in text:
            self.seen.set()
            logging.getLogger("bridge.ami.link").removeHandler(self)


async def healthz(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz") as resp:
        body = await resp.json()
        assert resp.status == 200, body
        return dict(body)


async def answered_call(ws: Any) -> list[dict[str, Any]]:
    got = [await recv(ws) for _ in range(3)]
    assert [m["type"] for m in got] == ["call.ringing", "call.answered", "call.ended"]
    return got


async def quiet(ws: Any) -> None:
    """Nothing is queued for this page before the answer to a ping."""
    await ws.send(json.dumps({"type": "ping"}))
    assert (await recv(ws))["type"] == "pong"


async def test_colliding_linkedids_give_two_records_and_each_agent_its_own_pops(
    database_url: str, pool: asyncpg.Pool[Any], tmp_path: Path, caplog: Any
) -> None:
    tokens = await seniors(pool)
    caplog.set_level(logging.WARNING, logger="bridge.crm.off_pbx")
    agi_port = free_port()
    east, west = sim("east", agi_port), sim("west", agi_port)
    async with AsyncExitStack() as stack:
        east_ami = await stack.enter_async_context(AmiServer(east))
        west_ami = await stack.enter_async_context(AmiServer(west))
        ports = {"east": east_ami.port, "west": west_ami.port}
        config = two_pbx_config(database_url, tmp_path, agi_port, ports)
        rt = await stack.enter_async_context(bridge(config))
        await asyncio.wait_for(rt.get("ami").connected(), 10)
        # The trace CRM's agents (pbx '') match no device here: one warning at start names them.
        (warning,) = [r.getMessage() for r in caplog.records if r.name == "bridge.crm.off_pbx"]
        legacy = await pool.fetch("SELECT id FROM agents WHERE pbx = '' AND active ORDER BY id")
        assert legacy and f"{len(legacy)} active agent(s)" in warning
        assert all(r["id"] in warning for r in legacy) and "east-2001" not in warning
        pops = rt.get("pops").port
        east_ws = await hello(pops, tokens["east-2001"])
        west_ws = await hello(pops, tokens["west-2001"])

        east_result = await asyncio.wait_for(east.run_scenario("vip-answered"), 30)
        assert east_result[0].variables["BRIDGE_QUEUE"] == "senior"
        east_pops = await answered_call(east_ws)
        await quiet(west_ws)  # the west agent's 2001 did not ring for east's call

        west_result = await asyncio.wait_for(west.run_scenario("vip-answered"), 30)
        assert west_result[0].variables["BRIDGE_QUEUE"] == "senior"
        west_pops = await answered_call(west_ws)
        await quiet(east_ws)

        east_id, west_id = east_pops[0]["call_id"], west_pops[0]["call_id"]
        assert east_id.startswith("east:") and west_id.startswith("west:")
        assert east_id.removeprefix("east:") == west_id.removeprefix("west:")  # collided
        assert east_pops[1]["agent"] == "east-2001" and west_pops[1]["agent"] == "west-2001"

        for call_id, agent in ((east_id, "east-2001"), (west_id, "west-2001")):
            row = await wait_for_row(pool, call_id)
            assert row["customer_id"] == ALICE and row["rule"] == "vip"  # its own decision
            assert row["outcome"] == "answered"
            assert [a["agent"] for a in row["agents"]] == [agent]
        decisions = await pool.fetch("SELECT linkedid FROM route_decisions ORDER BY linkedid")
        assert [r["linkedid"] for r in decisions] == [east_id, west_id]

        url = rt.get("http").url
        health = await healthz(url)
        assert health["ami"] == "up"
        assert health["components"]["ami"]["detail"]["pbx"] == {"east": "up", "west": "up"}
        # Only an agent who talked on that PBX's call may file it.
        assert await file_disposition(url, tokens["west-2001"], east_id) == 403
        assert await file_disposition(url, tokens["east-2001"], east_id) in (200, 204)
        saved = await pool.fetch("SELECT call_id, disposition FROM call_records ORDER BY call_id")
        assert [(r["call_id"], r["disposition"]) for r in saved] == [
            (east_id, "resolved"),
            (west_id, None),
        ]
        for ws in (east_ws, west_ws):
            await ws.close()


async def file_disposition(url: str, token: str, call_id: str) -> int:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
        http.post(
            f"{url}/agent/api/calls/{call_id}/disposition",
            json={"disposition": "resolved", "notes": ""},
        ) as resp,
    ):
        return resp.status


async def test_a_click_to_call_goes_out_through_the_agents_own_pbx(
    database_url: str, pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    await load_trace_crm(pool)
    token = await create_agent(pool, "west-1001", "West 1001", "agent", "1001", "west")
    agi_port = free_port()
    east, west = sim("east", agi_port), sim("west", agi_port)
    async with AsyncExitStack() as stack:
        east_ami = await stack.enter_async_context(AmiServer(east))
        west_ami = await stack.enter_async_context(AmiServer(west))
        ports = {"east": east_ami.port, "west": west_ami.port}
        config = two_pbx_config(database_url, tmp_path, agi_port, ports)
        rt = await stack.enter_async_context(bridge(config))
        await asyncio.wait_for(rt.get("ami").connected(), 10)
        page = await hello(rt.get("pops").port, token)
        url, auth = rt.get("http").url, {"Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession(headers=auth) as http,
            http.post(f"{url}/agent/api/dial", json={"number": "+15551230002"}) as resp,
        ):
            body = await resp.json()
            assert resp.status == 202, body
        call_id = body["call_id"]
        assert call_id.startswith("west:c2d-")

        dialing, answered, _ended = [await recv(page) for _ in range(3)]
        assert dialing["type"] == "call.dialing" and dialing["call_id"] == call_id
        assert answered["agent"] == "west-1001"
        row = await wait_for_row(pool, call_id)
        assert row["direction"] == "outbound" and [a["agent"] for a in row["agents"]] == [
            "west-1001"
        ]
        [originate] = [a for a in west_ami.actions_seen if a.get("action") == "Originate"]
        assert originate["channelid"] == call_id.removeprefix("west:")
        assert originate["channel"] == "PJSIP/1001"
        assert not [a for a in east_ami.actions_seen if a.get("action") == "Originate"]
        await page.close()


async def test_one_pbx_down_leaves_the_other_popped_and_recorded(
    database_url: str, pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    tokens = await seniors(pool)
    agi_port = free_port()
    east, west = sim("east", agi_port), sim("west", agi_port)
    async with AsyncExitStack() as stack:
        west_ami = await stack.enter_async_context(AmiServer(west))
        async with AmiServer(east) as east_ami:
            ports = {"east": east_ami.port, "west": west_ami.port}
            config = two_pbx_config(database_url, tmp_path, agi_port, ports)
            rt = await stack.enter_async_context(bridge(config))
            await asyncio.wait_for(rt.get("ami").connected(), 10)
            refused = RefusedWatch(east_ami.port)
        await asyncio.wait_for(refused.seen.wait(), 10)  # east's link now retries in vain
        health = await healthz(rt.get("http").url)
        assert health["ami"] == "degraded"
        assert health["components"]["ami"]["detail"]["pbx"] == {"east": "down", "west": "up"}

        west_ws = await hello(rt.get("pops").port, tokens["west-2001"])
        await asyncio.wait_for(west.run_scenario("vip-answered"), 30)
        west_pops = await answered_call(west_ws)
        call_id = west_pops[0]["call_id"]
        assert call_id.startswith("west:")
        row = await wait_for_row(pool, call_id)
        assert row["outcome"] == "answered" and row["rule"] == "vip"
        await west_ws.close()
