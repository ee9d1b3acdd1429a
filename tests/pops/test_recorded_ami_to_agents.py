"""Recorded AMI bytes → the AMI link → event bus → tracker → pop hub → several agents' websockets.

A fake manager on loopback plays three recorded calls back to back (the VIP ringall, the
blind transfer, the UTF-8 caller name), cut at random points across writes so frames and
UTF-8 characters arrive split. Each agent must get exactly its own pops, in order.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.ami.pipeline import AmiPipeline
from bridge.config import AmiConfig
from bridge.models import CALL_EVENT_TYPES, CallEnded, CallEvent
from tests.ami.fake_ami import FakeAmi, Session
from tests.conftest import TRACES
from tests.crm.fixture_crm import ALICE, BOB, ZHANG
from tests.pops.conftest import recv_until_pong

SCENARIOS = ("vip-answered", "blind-transfer", "unicode-name")
PLAY = b"".join((TRACES / name / "ami.log").read_bytes() for name in SCENARIOS)
SECRET = "s3cret"


def _calls(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(customer id of the call, message type) in arrival order."""
    customer_of: dict[str, str] = {}
    out = []
    for m in messages:
        if m["type"] == "call.ringing":
            customer_of[m["call_id"]] = (m["customer"] or {}).get("id", "?")
        out.append((customer_of.get(m["call_id"], "?"), m["type"]))
    return out


@pytest.mark.parametrize("seed", [1, 7, 42])
async def test_each_agent_gets_its_own_pops_in_order(make_hub: Any, seed: int) -> None:
    env = await make_hub()
    agents = {a: await env.connect(a) for a in ("1001", "1002", "2001", "2002")}
    ended: list[CallEnded] = []
    all_ended = asyncio.Event()

    async def count(event: CallEvent) -> None:
        if isinstance(event, CallEnded):
            ended.append(event)
            if len(ended) == len(SCENARIOS):
                all_ended.set()

    async with FakeAmi([Session(play=PLAY, seed=seed)], secret=SECRET) as pbx:
        config = AmiConfig(port=pbx.port, username="bridge", secret=SECRET)
        pipeline = AmiPipeline.build(config, env.tracker)
        pipeline.events.observe(env.hub.dispatch, CALL_EVENT_TYPES)  # as the composition root
        pipeline.events.subscribe(count, CALL_EVENT_TYPES)
        await pipeline.start()
        try:
            await asyncio.wait_for(all_ended.wait(), 15)
        finally:
            await pipeline.stop()
    await env.hub.drain()
    got = {a: _calls(await recv_until_pong(ws)) for a, ws in agents.items()}

    assert got["2001"] == [
        (ALICE, "call.ringing"),
        (ALICE, "call.answered"),
        (ALICE, "call.ended"),
        (BOB, "call.ringing"),
        (BOB, "call.transferred"),
        (BOB, "call.answered"),
        (BOB, "call.ended"),
        (ZHANG, "call.ringing"),
        (ZHANG, "call.answered"),
        (ZHANG, "call.ended"),
    ]
    assert got["2002"] == [
        (ALICE, "call.ringing"),
        (ALICE, "call.retracted"),
        (ZHANG, "call.ringing"),
        (ZHANG, "call.retracted"),
    ]
    # 1001 answered Bob, so it follows its call to the end: handed over, answered by 2001.
    assert got["1001"] == [
        (BOB, "call.ringing"),
        (BOB, "call.answered"),
        (BOB, "call.transferred"),
        (BOB, "call.answered"),
        (BOB, "call.ended"),
    ]
    assert got["1002"] == []
