"""End to end over loopback: the PBX simulator's AMI → AmiLink → CallTracker → PopHub.submit →
agents' websocket clients, with the traces' CRM in the real database."""

from __future__ import annotations

import asyncio
import re

from bridge.ami.link import AmiLink
from bridge.config import DEFAULT_DEVICE_PATTERN, AmiConfig
from bridge.sim import AmiServer, AmiUser, FastClock, SimPbx, lab_config
from bridge.tracker import CallTracker
from tests.crm.fixture_crm import ALICE
from tests.pops.conftest import recv_json
from tests.sim.conftest import ScriptedAgi


async def test_a_live_simulated_ringall_pops_both_agents_and_retracts_the_loser(make_hub) -> None:
    env = await make_hub()
    winner, loser = await env.connect("2001"), await env.connect("2002")
    agi = ScriptedAgi(lambda env: ['SET VARIABLE BRIDGE_QUEUE "senior"'])
    agi.server = await asyncio.start_server(agi.handle, "127.0.0.1", 0)
    try:
        pbx = SimPbx(
            lab_config(
                technology="PJSIP", agi_port=agi.port, ami_users=(AmiUser("bridge", "s3cret"),)
            ),
            clock=FastClock(speed=50),
        )
        async with AmiServer(pbx) as ami:
            tracker = CallTracker(re.compile(DEFAULT_DEVICE_PATTERN))
            link = AmiLink(AmiConfig(port=ami.port, username="bridge", secret="s3cret"), tracker)
            link.subscribe(env.hub.submit)
            await link.start()
            try:
                await asyncio.wait_for(link.connected(), 10)
                await asyncio.wait_for(pbx.run_scenario("vip-answered"), 20)
                got = [await recv_json(winner) for _ in range(3)]
                lost = [await recv_json(loser) for _ in range(2)]
            finally:
                await link.stop()
    finally:
        agi.server.close()
        await agi.server.wait_closed()
    assert [m["type"] for m in got] == ["call.ringing", "call.answered", "call.ended"]
    assert got[0]["customer"]["id"] == ALICE and got[0]["queue"] == "senior"
    assert got[1]["agent"] == "2001"
    assert [m["type"] for m in lost] == ["call.ringing", "call.retracted"]
    assert {m["call_id"] for m in got + lost} == {got[0]["call_id"]}
