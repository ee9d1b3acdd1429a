"""Click-to-call through the whole bridge against the PBX simulator: the desk asks, the
agent's device rings, the agent answers, the number is dialled through the trunk, the agent's
page gets `call.dialing` then `call.answered`, and the record says outbound. The call is a
call back, so the missed call it answers leaves the callback list."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bridge.config import build_config
from bridge.plugin import Context
from bridge.runtime import run_bridge
from bridge.sim import AmiServer, AmiUser, FastClock, SimPbx, lab_config
from tests.crm.fixture_crm import BOB, load_trace_crm
from tests.test_end_to_end import free_port, hello, recv, wait_for_row


async def test_a_click_to_call_rings_the_agent_dials_out_pops_and_records_outbound(
    database_url: str, pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    tokens = await load_trace_crm(pool)
    missed_at = datetime.now(UTC) - timedelta(hours=1)
    await pool.execute(
        "INSERT INTO call_records (call_id, caller, queue, outcome, started_at, direction)"
        " VALUES ('1796000000.1', '+15551230002', 'support', 'abandoned', $1, 'inbound')",
        missed_at,
    )
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
                "agi": {"port": agi_port},
                "http": {"port": 0},
                "pops": {"port": 0},
                "records": {"spool_dir": str(tmp_path / "spool")},
                "pbx": {"outbound_context": "from-internal", "outbound_callerid": "<18005550100>"},
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
            page = await hello(rt.get("pops").port, tokens["1001"])
            url, auth = rt.get("http").url, {"Authorization": f"Bearer {tokens['1001']}"}
            async with aiohttp.ClientSession(headers=auth) as http:
                async with http.get(f"{url}/agent/api/callbacks") as resp:
                    listed = (await resp.json())["callbacks"]
                assert [c["call_id"] for c in listed] == ["1796000000.1"]
                async with http.post(
                    f"{url}/agent/api/dial", json={"callback_of": "1796000000.1"}
                ) as resp:
                    body = await resp.json()
                    assert resp.status == 202, body
                call_id = body["call_id"]

                dialing, answered, ended = [await recv(page) for _ in range(3)]
                assert dialing["type"] == "call.dialing" and dialing["call_id"] == call_id
                assert dialing["customer"]["id"] == BOB
                assert answered["type"] == "call.answered" and answered["agent"] == "1001"
                assert ended["type"] == "call.ended"

                row = await wait_for_row(pool, call_id)
                assert row["direction"] == "outbound" and row["outcome"] == "answered"
                assert row["caller"] == "15551230002" and row["customer_id"] == BOB  # as dialled
                # Asterisk bills the agent's channel from the agent's own answer: the far end's
                # 1 s of ringing plus 3 s of talk (the click-to-call recording: 2 s for ~1 s).
                assert row["talk_s"] == 4 and row["recording_path"]
                assert [a["agent"] for a in row["agents"]] == ["1001"]

                async with http.get(f"{url}/agent/api/callbacks") as resp:
                    assert (await resp.json())["callbacks"] == []

            [originate] = [a for a in ami.actions_seen if a.get("action") == "Originate"]
            assert {k: v for k, v in originate.items() if k != "actionid"} == {
                "action": "Originate",
                "channel": "PJSIP/1001",
                "context": "from-internal",
                "exten": "15551230002",
                "priority": "1",
                "timeout": "30000",
                "channelid": call_id,
                "async": "true",
                "callerid": "<18005550100>",
            }
            await page.close()
        finally:
            stop.set()
            await asyncio.wait_for(bridge, 30)
