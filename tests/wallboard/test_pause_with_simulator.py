"""Pausing an agent reaches the PBX as `QueuePause` (here the simulator's AMI), and the
simulator's `QueueStatus` then lists the member as paused, with its reason."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from bridge.ami.link import AmiLink
from bridge.config import DEFAULT_DEVICE_PATTERN, AmiConfig
from bridge.errors import UnsafeValueError
from bridge.sim import AmiServer, AmiUser, SimConfig, SimPbx
from bridge.wallboard.ami import AmiQueues, PauseFailed

PATTERN = re.compile(DEFAULT_DEVICE_PATTERN)
USERS = (
    AmiUser("bridge", "s3cret", write=frozenset({"reporting", "agent"})),
    AmiUser("readonly", "s3cret", write=frozenset({"reporting"})),
)


@dataclass
class Pbx:
    pbx: SimPbx
    ami: AmiServer
    queues: AmiQueues


async def _linked(user: str) -> AsyncIterator[Pbx]:
    pbx = SimPbx(SimConfig(ami_users=USERS))
    async with AmiServer(pbx) as ami:
        link = AmiLink(AmiConfig(port=ami.port, username=user, secret="s3cret"))
        await link.start()
        try:
            await link.connected()
            yield Pbx(pbx, ami, AmiQueues(link, PATTERN))
        finally:
            await link.stop()


@pytest.fixture
async def sim() -> AsyncIterator[Pbx]:
    async for linked in _linked("bridge"):
        yield linked


async def test_pause_reaches_the_pbx_and_queue_status_shows_it(sim: Pbx) -> None:
    assert await sim.queues.pause("2001", True, "lunch") == 1
    sent = [a for a in sim.ami.actions_seen if a.get("action", "").lower() == "queuepause"]
    assert sent[-1]["interface"] == "PJSIP/2001"
    assert sent[-1]["paused"] == "true"
    assert sent[-1]["reason"] == "lunch"
    assert sim.pbx.paused == {"2001": "lunch"}
    listed = {(m.queue, m.device): (m.paused, m.reason) for m in await sim.queues.members()}
    assert listed[("senior", "2001")] == (True, "lunch")
    assert listed[("senior", "2002")] == (False, "")

    await sim.queues.pause("2001", False, "")
    assert sim.pbx.paused == {}
    listed = {(m.queue, m.device): m.paused for m in await sim.queues.members()}
    assert listed[("senior", "2001")] is False


async def test_a_device_in_no_queue_is_refused_without_sending_anything(sim: Pbx) -> None:
    with pytest.raises(PauseFailed, match="not a member"):
        await sim.queues.pause("9999", True, "lunch")
    assert not [a for a in sim.ami.actions_seen if a.get("action", "").lower() == "queuepause"]


async def test_a_reason_with_cr_lf_never_reaches_the_wire(sim: Pbx) -> None:
    with pytest.raises(UnsafeValueError):
        await sim.queues.pause("2001", True, "x\r\nAction: Originate")
    assert sim.pbx.paused == {}
    assert not [a for a in sim.ami.actions_seen if a.get("action", "").lower() == "originate"]


async def test_without_the_agent_write_class_the_pbx_refuses() -> None:
    async for sim in _linked("readonly"):
        with pytest.raises(PauseFailed, match="Permission denied"):
            await sim.queues.pause("2001", True, "lunch")
        assert sim.pbx.paused == {}
