"""End to end over loopback: the PBX simulator's AMI → AmiLink → EventBus → CallTracker →
PopHub.dispatch → agents' websocket clients, with the traces' CRM in the real database."""

from __future__ import annotations

import asyncio

from bridge.ami.pipeline import AmiPipeline
from bridge.config import AmiConfig
from bridge.models import CALL_EVENT_TYPES
from bridge.sim import AmiServer, AmiUser, FastClock, SimPbx, lab_config
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
            config = AmiConfig(port=ami.port, username="bridge", secret="s3cret")
            pipeline = AmiPipeline.build(config, env.tracker)
            pipeline.events.observe(env.hub.dispatch, CALL_EVENT_TYPES)
            await pipeline.start()
            try:
                await asyncio.wait_for(pipeline.link.connected(), 10)
                await asyncio.wait_for(pbx.run_scenario("vip-answered"), 20)
                got = [await recv_json(winner) for _ in range(3)]
                lost = [await recv_json(loser) for _ in range(2)]
            finally:
                await pipeline.stop()
    finally:
        agi.server.close()
        await agi.server.wait_closed()
    assert [m["type"] for m in got] == ["call.ringing", "call.answered", "call.ended"]
    assert got[0]["customer"]["id"] == ALICE and got[0]["queue"] == "senior"
    assert got[1]["agent"] == "2001"
    assert [m["type"] for m in lost] == ["call.ringing", "call.retracted"]
    assert {m["call_id"] for m in got + lost} == {got[0]["call_id"]}
