"""The tracker fed from an event bus: the same call events as a replay, each batch seen by the
bus's observers right after the PBX event that caused it, and held calls ended at stop()."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from bridge.ami.decode import decode_event
from bridge.ami.protocol import AmiParser
from bridge.ami_replay import ReplayClock, replay
from bridge.bus import EventBus
from bridge.config import DEFAULT_DEVICE_PATTERN
from bridge.models import CALL_EVENT_TYPES, CallEnded, CallEvent
from bridge.pbx_events import PbxSnapshot
from bridge.tracker import CallTracker, TrackerFeed
from tests.conftest import TRACES
from tests.tracker.test_trace_replay import EXPECTED, describe

PATTERN = re.compile(DEFAULT_DEVICE_PATTERN)
VIP = (TRACES / "vip-answered" / "ami.log").read_bytes()


async def test_the_bus_carries_what_a_replay_emits_in_pbx_order() -> None:
    bus = EventBus()
    tracker = CallTracker(PATTERN)
    feed = TrackerFeed(tracker, bus, tick_s=3600)
    batches: list[list[CallEvent]] = []
    states: list[int] = []

    def observe(events: list[Any]) -> None:
        batches.append(events)
        states.append(tracker.active_calls)  # read inline: the state as of these events

    bus.observe(observe, CALL_EVENT_TYPES)
    await feed.start()
    clock = ReplayClock()
    expected_batches: list[list[CallEvent]] = []
    shadow = CallTracker(PATTERN)
    shadow_clock = ReplayClock()
    for frame in AmiParser().feed(VIP):
        event = decode_event(frame, clock())
        shadow_event = decode_event(frame, shadow_clock())
        if event is None or shadow_event is None:
            continue
        bus.publish([event])
        if out := shadow.feed(shadow_event):
            expected_batches.append(out)
    await feed.stop()  # ends what is still held for Cdrs, on the bus
    assert [describe(b) for b in batches[: len(expected_batches)]] == [
        describe(b) for b in expected_batches
    ]
    everything = [e for b in batches for e in b]
    assert describe(everything) == EXPECTED["vip-answered"]
    assert describe(everything) == describe(replay(VIP, CallTracker(PATTERN)))
    assert states[-1] == tracker.active_calls


async def test_a_snapshot_resyncs_the_tracker_and_its_call_ends_are_published() -> None:
    """A call up before a reconnect and gone from the listing ends, inferred, on the bus."""
    bus = EventBus()
    tracker = CallTracker(PATTERN)
    TrackerFeed(tracker, bus)
    ended: list[CallEnded] = []
    bus.observe(
        lambda events: ended.extend(e for e in events if isinstance(e, CallEnded)), CALL_EVENT_TYPES
    )
    cut = VIP.index(b"Event: BridgeEnter")
    replay(VIP[:cut], tracker, flush=False)
    assert tracker.active_calls == 1 and ended == []
    bus.publish([PbxSnapshot(datetime(2026, 1, 1, 1, tzinfo=UTC), (), (), complete=True)])
    assert tracker.active_calls == 0
    (call,) = ended
    assert "ended_at" in call.summary.inferred
    assert bus.health().detail["subscribers"] == 0


async def test_a_refused_listing_keeps_calls_in_progress() -> None:
    bus = EventBus()
    tracker = CallTracker(PATTERN)
    feed = TrackerFeed(tracker, bus)
    replay(VIP[: VIP.index(b"Event: BridgeEnter")], tracker, flush=False)
    bus.publish([PbxSnapshot(datetime(2026, 1, 1, 1, tzinfo=UTC), (), (), complete=False)])
    assert tracker.active_calls == 1
    assert feed.health().detail == {"active_calls": 1}
