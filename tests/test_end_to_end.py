"""The whole bridge through its composition root, against the PBX simulator over loopback.

The simulator places the recorded VIP call (PJSIP channels): its FastAGI client asks the
bridge's /route, its AMI server streams the call's events to the bridge's AMI link. Asserted
on every outside surface: the variables the dialplan got, the pops each agent's websocket
received, the `call_records` row, `/healthz`, the admin API and a filed disposition.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import websockets

from bridge.config import build_config
from bridge.crm.agents import create_agent
from bridge.plugin import Context
from bridge.runtime import run_bridge
from bridge.sim import AmiServer, AmiUser, FastClock, SimPbx, lab_config
from tests.crm.fixture_crm import ALICE, load_trace_crm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def recv(ws: Any) -> dict[str, Any]:
    async with asyncio.timeout(10):
        message = json.loads(await ws.recv())
    assert isinstance(message, dict)
    return message


async def wait_for_row(pool: asyncpg.Pool[Any], call_id: str) -> asyncpg.Record:
    async with asyncio.timeout(15):
        while True:
            row = await pool.fetchrow("SELECT * FROM call_records WHERE call_id = $1", call_id)
            if row is not None and row["outcome"] is not None:
                return row
            await asyncio.sleep(0.05)


async def hello(port: int, token: str) -> Any:
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/")
    await ws.send(json.dumps({"type": "hello", "token": token}))
    assert (await recv(ws))["type"] == "welcome"
    return ws


async def test_a_vip_call_is_routed_popped_recorded_and_dispositioned(
    database_url: str, pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    tokens = await load_trace_crm(pool)
    admin_token = await create_agent(pool, "boss", "Boss", "admin", "9000")
    agi_port = free_port()
    pbx = SimPbx(
        lab_config(technology="PJSIP", agi_port=agi_port, ami_users=(AmiUser("bridge", "s3cret"),)),
        clock=FastClock(speed=20),
    )
    async with AmiServer(pbx) as ami:
        config = build_config(
            {
                "database": {"url": database_url},
                "ami": {"port": ami.port, "username": "bridge", "secret": "s3cret"},
                "agi": {"port": agi_port, "budget_ms": 2000},
                "http": {"port": 0},
                "pops": {"port": 0},
                "records": {"spool_dir": str(tmp_path / "spool")},
            },
            {},
        )
        stop = asyncio.Event()
        ready: asyncio.Future[Context] = asyncio.get_running_loop().create_future()
        bridge = asyncio.ensure_future(run_bridge(config, stop=stop, started=ready.set_result))
        try:
            async with asyncio.timeout(30):
                await asyncio.wait([ready, bridge], return_when=asyncio.FIRST_COMPLETED)
            rt = ready.result()
            await asyncio.wait_for(rt.get("ami").connected(), 10)
            pops_port, http_url = rt.get("pops").port, rt.get("http").url
            winner, loser = (
                await hello(pops_port, tokens["2001"]),
                await hello(pops_port, tokens["2002"]),
            )
            bystander = await hello(pops_port, tokens["1001"])

            results = await asyncio.wait_for(pbx.run_scenario("vip-answered"), 30)
            assert results[0].variables["BRIDGE_QUEUE"] == "senior"
            assert results[0].variables["BRIDGE_CUSTOMER_NAME"] == "Alice Chen"
            assert results[0].variables["BRIDGE_DEGRADED"] == "0"

            got = [await recv(winner) for _ in range(3)]
            lost = [await recv(loser) for _ in range(2)]
            assert [m["type"] for m in got] == ["call.ringing", "call.answered", "call.ended"]
            assert [m["type"] for m in lost] == ["call.ringing", "call.retracted"]
            ringing = got[0]
            assert ringing["customer"]["id"] == ALICE and ringing["queue"] == "senior"
            assert "orders" in ringing["customer"]  # the unowned customer's full card
            call_id = ringing["call_id"]

            row = await wait_for_row(pool, call_id)
            assert row["customer_id"] == ALICE and row["rule"] == "vip"
            assert row["queue"] == "senior" and row["outcome"] == "answered"
            assert [a["agent"] for a in row["agents"]] == ["2001"]
            assert row["talk_s"] == 2 and row["recording_path"]
            history = await pool.fetchval(
                "SELECT count(*) FROM service_history WHERE call_id = $1", call_id
            )
            assert history == 1

            async with aiohttp.ClientSession() as http:
                async with http.get(f"{http_url}/healthz") as resp:
                    health = await resp.json()
                    assert resp.status == 200, health
                assert health["ami"] == "up" and health["database"] == "up"
                assert health["ari"] == "disabled"
                async with http.get(
                    f"{http_url}/api/calls/{call_id}",
                    headers={"Authorization": f"Bearer {admin_token}"},
                ) as resp:
                    assert resp.status == 200
                    assert (await resp.json())["customer_id"] == ALICE
                async with http.post(
                    f"{http_url}/agent/api/calls/{call_id}/disposition",
                    headers={"Authorization": f"Bearer {tokens['2001']}"},
                    json={"disposition": "resolved", "notes": "upgraded the plan"},
                ) as resp:
                    assert resp.status in (200, 204), await resp.text()
                async with http.post(
                    f"{http_url}/agent/api/calls/{call_id}/disposition",
                    headers={"Authorization": f"Bearer {tokens['1001']}"},
                    json={"disposition": "complaint", "notes": "not my call"},
                ) as resp:
                    assert resp.status == 403
            saved = await pool.fetchrow(
                "SELECT disposition, notes FROM call_records WHERE call_id = $1", call_id
            )
            assert (saved["disposition"], saved["notes"]) == ("resolved", "upgraded the plan")

            # The bystander of the other queue saw nothing of this call.
            await bystander.send(json.dumps({"type": "ping"}))
            assert (await recv(bystander))["type"] == "pong"
            for ws in (winner, loser, bystander):
                await ws.close()
        finally:
            stop.set()
            async with asyncio.timeout(30):
                await bridge
