"""The AMI link and tracker against the project's PBX simulator, with Local and PJSIP channel
names: each recorded scenario, re-enacted live over loopback, yields the recording's events."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from bridge.ami.pipeline import AmiPipeline
from bridge.config import DEFAULT_DEVICE_PATTERN, AmiConfig
from bridge.models import CALL_EVENT_TYPES, CallEnded, CallEvent, CallRinging
from bridge.sim import AmiServer, AmiUser, Clock, FastClock, SimPbx, lab_config
from bridge.tracker import CallTracker
from tests.sim.conftest import LateClock, ScriptedAgi
from tests.tracker.test_trace_replay import EXPECTED, describe

SCENARIOS = [
    "regular-answered",
    "vip-answered",
    "vip-answered-least-privilege",
    "unicode-name",
    "unknown-caller",
    "anonymous",
    "abandoned",
    "blind-transfer",
]
QUEUES = {"vip-answered": "senior", "vip-answered-least-privilege": "senior"}
QUEUES["unicode-name"] = "senior"
USERS = (
    AmiUser("bridge", "s3cret"),
    AmiUser("readonly", "r3ad", frozenset({"call", "agent", "cdr"})),
)


def without_ids(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Drop call ids (the simulator's Uniqueids differ) and recording file names."""
    out = []
    for row in rows:
        kind, _, *rest = row
        if kind == "ended":
            rest[-1] = rest[-1] is not None  # a recording path or not
        out.append((kind, *rest))
    return out


async def run_live(name: str, technology: str, clock: Clock | None = None) -> list[CallEvent]:
    queue = QUEUES.get(name, "support")
    agi = ScriptedAgi(lambda env: [f'SET VARIABLE BRIDGE_QUEUE "{queue}"'])
    agi.server = await asyncio.start_server(agi.handle, "127.0.0.1", 0)
    least = name.endswith("least-privilege")
    user, secret = ("readonly", "r3ad") if least else ("bridge", "s3cret")
    events: list[CallEvent] = []
    ended = asyncio.Event()
    calls = 8 if name == "concurrent-8" else 1

    async def collect(event: CallEvent) -> None:
        events.append(event)
        if sum(isinstance(e, CallEnded) for e in events) == calls:
            ended.set()

    try:
        pbx = SimPbx(
            lab_config(technology=technology, agi_port=agi.port, ami_users=USERS),
            clock=clock or FastClock(speed=50),
        )
        async with AmiServer(pbx) as ami:
            tracker = CallTracker(re.compile(DEFAULT_DEVICE_PATTERN))
            config = AmiConfig(port=ami.port, username=user, secret=secret)
            pipeline = AmiPipeline.build(config, tracker)
            pipeline.events.subscribe(collect, CALL_EVENT_TYPES)
            await pipeline.start()
            try:
                await asyncio.wait_for(pipeline.link.connected(), 10)
                await asyncio.wait_for(pbx.run_scenario(name), 20)
                await asyncio.wait_for(ended.wait(), 10)
            finally:
                await pipeline.stop()
    finally:
        agi.server.close()
        await agi.server.wait_closed()
    return events


@pytest.mark.parametrize("technology", ["Local", "PJSIP"])
@pytest.mark.parametrize(
    "name",
    [n for n in SCENARIOS],
)
async def test_simulated_call_yields_the_recorded_events(name: str, technology: str) -> None:
    events = await run_live(name, technology)
    assert without_ids(describe(events)) == without_ids(EXPECTED[name])
    channels = [e.channel for e in events if isinstance(e, CallRinging)]
    prefix = "PJSIP/" if technology == "PJSIP" else "Local/"
    assert channels and all(c.startswith(prefix) for c in channels)


@pytest.mark.parametrize("name", ["regular-answered", "anonymous", "blind-transfer"])
async def test_a_late_clock_still_yields_the_recorded_talk_times(name: str) -> None:
    """Each wake-up 0.6 simulated seconds late, as under load: the tracker still reports
    the scripted talk (Asterisk's own figures, not the time the events took to come)."""
    events = await run_live(name, "Local", LateClock(late_s=0.6))
    assert without_ids(describe(events)) == without_ids(EXPECTED[name])


@pytest.mark.parametrize("technology", ["Local", "PJSIP"])
async def test_eight_simulated_concurrent_calls_are_tracked_apart(technology: str) -> None:
    events = await run_live("concurrent-8", technology)
    by_call: dict[str, list[str]] = {}
    for e in events:
        by_call.setdefault(e.call_id, []).append(type(e).__name__)
    assert len(by_call) == 8
    assert all(kinds == ["CallRinging", "CallAnswered", "CallEnded"] for kinds in by_call.values())
    ended = [e for e in events if isinstance(e, CallEnded)]
    assert sorted(e.summary.caller for e in ended) == [f"+1555123{n}" for n in range(1000, 1008)]
    assert all(e.summary.outcome == "answered" and e.summary.queue == "support" for e in ended)
    assert {a.device for e in ended for a in e.summary.agents} == {"1001", "1002"}
