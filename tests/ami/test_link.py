"""The live AMI link against a fake Asterisk manager on loopback."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from bridge.ami.pipeline import AmiPipeline
from bridge.config import DEFAULT_DEVICE_PATTERN, AmiConfig
from bridge.errors import LinkDown, UnsafeValueError
from bridge.models import CALL_EVENT_TYPES, CallEnded, CallEvent
from bridge.pbx_events import CdrRecord, Hangup
from bridge.tracker import CallTracker
from tests.ami.fake_ami import FakeAmi, Session, alive_channels
from tests.conftest import TRACES
from tests.tracker.test_trace_replay import EXPECTED, describe

VIP = (TRACES / "vip-answered" / "ami.log").read_bytes()
SECRET = "s3cret"
WAIT = 10.0  # generous "did not hang" bound


def config(port: int, **kw: object) -> AmiConfig:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "username": "bridge",
        "secret": SECRET,
        "keepalive_s": 5.0,
        "reconnect_max_s": 0.05,
    }
    values.update(kw)
    return AmiConfig(**values)  # type: ignore[arg-type]


def make_ami(port: int, *, pong_timeout_s: float | None = None, **kw: object) -> AmiPipeline:
    tracker = CallTracker(re.compile(DEFAULT_DEVICE_PATTERN), cdr_grace_s=0.5)
    return AmiPipeline.build(
        config(port, **kw), tracker, tick_s=0.05, pong_timeout_s=pong_timeout_s
    )


class Collector:
    def __init__(self) -> None:
        self.events: list[CallEvent] = []
        self.ended = asyncio.Event()

    async def __call__(self, event: CallEvent) -> None:
        self.events.append(event)
        if isinstance(event, CallEnded):
            self.ended.set()


def split_after(data: bytes, marker: bytes, occurrence: int = 1) -> int:
    """Offset just after the frame containing the n-th `marker`."""
    pos = -1
    for _ in range(occurrence):
        pos = data.index(marker, pos + 1)
    return data.index(b"\r\n\r\n", pos) + 4


async def test_events_reach_a_subscriber(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with FakeAmi([Session(play=VIP)], secret=SECRET) as pbx:
        ami = make_ami(pbx.port)
        got = Collector()
        ami.events.subscribe(got, CALL_EVENT_TYPES)
        await ami.start()
        try:
            await asyncio.wait_for(got.ended.wait(), WAIT)
            health = ami.health()
            assert health.state == "up"
            assert health.detail["reconnects"] == 0
            assert health.detail["last_event_at"] is not None
        finally:
            await ami.stop()
    assert describe(got.events) == EXPECTED["vip-answered"]
    login = next(a for a in pbx.actions if a.get("Action") == "Login")
    assert login.get("Secret") == SECRET and login.get("Username") == "bridge"
    assert [a.get("Action") for a in pbx.actions][:3] == [
        "Login",
        "CoreShowChannels",
        "QueueStatus",
    ]
    assert SECRET not in caplog.text
    assert ami.health().state == "down"


async def test_a_link_that_stops_answering_ping_is_declared_dead_and_reconnected() -> None:
    sessions = [Session(answer_ping=False), Session(answer_ping=True)]
    async with FakeAmi(sessions, secret=SECRET) as pbx:
        ami = make_ami(pbx.port, keepalive_s=0.05, pong_timeout_s=0.2)
        await ami.start()
        try:
            await asyncio.wait_for(ami.link.connected(sessions=2), WAIT)
            assert ami.link.reconnects >= 1
            assert [await pbx.logins.get(), await pbx.logins.get()] == [0, 1]
            pong = await asyncio.wait_for(ami.link.action("Ping"), WAIT)
            assert pong.get("Ping") == "Pong"
            assert ami.health().state == "up"
        finally:
            await ami.stop()


async def test_link_dropped_mid_call_resyncs_and_ends_the_call_once() -> None:
    first_cut = split_after(VIP, b"Event: BridgeEnter", 2)
    # Frames between the two cuts are lost while the link is down (2002's last hangup).
    second_cut = split_after(VIP, b"Cause-txt: Answered elsewhere", 2)
    assert first_cut < second_cut
    sessions = [
        Session(play=VIP[:first_cut], close_after_play=True, seed=3),
        Session(channels=alive_channels(VIP[:second_cut]), play=VIP[second_cut:], seed=4),
    ]
    async with FakeAmi(sessions, secret=SECRET) as pbx:
        ami = make_ami(pbx.port)
        got = Collector()
        ami.events.subscribe(got, CALL_EVENT_TYPES)
        await ami.start()
        try:
            await asyncio.wait_for(got.ended.wait(), WAIT)
            assert ami.link.sessions == 2
        finally:
            await ami.stop()
    assert describe(got.events) == EXPECTED["vip-answered"]
    (ended,) = [e for e in got.events if isinstance(e, CallEnded)]
    assert ended.summary.inferred == ()


async def test_a_refused_channel_listing_keeps_the_calls_in_progress(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Live on the lab with the least-privilege user (read = call,agent,cdr, no write): at a
    reconnect Asterisk answers CoreShowChannels with "Permission denied", and the empty
    listing ended a 20 s call 3 s in. Nothing listed is not nothing up."""
    first_cut = split_after(VIP, b"Event: BridgeEnter", 2)
    sessions = [
        Session(play=VIP[:first_cut], close_after_play=True, seed=3),
        Session(refuse_listings=True, play=VIP[first_cut:], seed=4),
    ]
    async with FakeAmi(sessions, secret=SECRET) as pbx:
        ami = make_ami(pbx.port)
        got = Collector()
        ami.events.subscribe(got, CALL_EVENT_TYPES)
        await ami.start()
        try:
            await asyncio.wait_for(got.ended.wait(), WAIT)
            assert ami.link.sessions == 2
        finally:
            await ami.stop()
    assert describe(got.events) == EXPECTED["vip-answered"]
    (ended,) = [e for e in got.events if isinstance(e, CallEnded)]
    assert ended.summary.inferred == ()
    assert "write = reporting" in caplog.text


async def test_a_call_that_ended_while_the_link_was_down_is_ended_by_resync() -> None:
    first_cut = split_after(VIP, b"Event: BridgeEnter", 2)
    sessions = [
        Session(play=VIP[:first_cut], close_after_play=True),
        Session(channels=[]),  # nothing is up any more
    ]
    async with FakeAmi(sessions, secret=SECRET) as pbx:
        ami = make_ami(pbx.port)
        got = Collector()
        ami.events.subscribe(got, CALL_EVENT_TYPES)
        await ami.start()
        try:
            await asyncio.wait_for(got.ended.wait(), WAIT)
        finally:
            await ami.stop()
    (ended,) = [e for e in got.events if isinstance(e, CallEnded)]
    assert ended.call_id == "1795464246.0"
    assert ended.summary.outcome == "answered"
    assert "ended_at" in ended.summary.inferred
    assert [a.device for a in ended.summary.agents] == ["2001"]


async def test_actions_refuse_injection_and_nothing_reaches_the_wire() -> None:
    async with FakeAmi([Session()], secret=SECRET) as pbx:
        ami = make_ami(pbx.port)
        await ami.start()
        try:
            await asyncio.wait_for(ami.link.connected(), WAIT)
            with pytest.raises(UnsafeValueError):
                await ami.link.action(
                    "Redirect", {"Channel": "PJSIP/1001-1\r\nAction: Originate\r\nChannel: x"}
                )
            answer = await asyncio.wait_for(ami.link.action("Ping"), WAIT)
            assert answer.get("Ping") == "Pong"
        finally:
            await ami.stop()
    names = [a.get("Action") for a in pbx.actions]
    assert "Originate" not in names and "Redirect" not in names
    assert all(a.get("Channel") is None for a in pbx.actions)


async def test_action_without_a_connection_is_link_down() -> None:
    ami = make_ami(1)
    with pytest.raises(LinkDown):
        await ami.link.action("Ping")


async def test_wrong_secret_keeps_retrying_and_never_logs_the_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with FakeAmi([Session()], secret="other") as pbx:
        ami = make_ami(pbx.port)
        await ami.start()
        try:
            for _ in range(2):
                await asyncio.wait_for(pbx.attempts.get(), WAIT)
            assert ami.health().state == "starting"
        finally:
            await ami.stop()
    assert "Authentication failed" in caplog.text
    assert SECRET not in caplog.text


async def test_a_slow_subscriber_does_not_stall_the_others() -> None:
    release = asyncio.Event()

    async def stuck(event: CallEvent) -> None:
        await release.wait()

    async with FakeAmi([Session(play=VIP)], secret=SECRET) as pbx:
        tracker = CallTracker(re.compile(DEFAULT_DEVICE_PATTERN))
        ami = AmiPipeline.build(config(pbx.port), tracker, subscriber_queue=1)
        ami.events.subscribe(stuck, CALL_EVENT_TYPES)
        fast = Collector()
        ami.events.subscribe(fast, CALL_EVENT_TYPES)
        await ami.start()
        try:
            await asyncio.wait_for(fast.ended.wait(), WAIT)
        finally:
            release.set()
            await ami.stop()
    assert describe(fast.events) == EXPECTED["vip-answered"]
    assert ami.events.subscriptions[0].dropped > 0


async def test_raw_cdr_events_reach_an_event_subscriber() -> None:
    cdrs: list[CdrRecord] = []
    all_in = asyncio.Event()

    async def on_cdr(event: CdrRecord) -> None:
        cdrs.append(event)
        if len(cdrs) == VIP.count(b"Event: Cdr\r\n"):
            all_in.set()

    async with FakeAmi([Session(play=VIP)], secret=SECRET) as pbx:
        ami = make_ami(pbx.port)
        ami.events.subscribe(on_cdr, (CdrRecord,))
        await ami.start()
        try:
            await asyncio.wait_for(all_in.wait(), WAIT)
        finally:
            await ami.stop()
    assert {c.uniqueid for c in cdrs} == {
        "1795464246.0",
        "1795464246.1",
        "1795464246.3",
        "1795464246.5",
    }
    talk = [c for c in cdrs if c.destination_channel == "Local/2001@phones-00000001;1"]
    assert [(c.billable_s, c.disposition) for c in talk] == [(2, "ANSWERED")]


async def test_stop_ends_a_call_held_for_its_cdrs_before_the_subscribers_drain() -> None:
    """The pipeline stops link, tracker feed, bus in that order: a call whose end still waits
    for its Cdrs when the bridge stops is ended by the feed and reaches a lossless subscriber
    (the record writer) before the bus lets its subscribers go."""
    trace = (TRACES / "direct-inward" / "ami.log").read_bytes()
    hangups = trace.count(b"Event: Hangup\r\n")
    cut = split_after(trace, b"Event: Hangup\r\n", hangups)  # before the caller's Cdrs
    assert b"Event: Cdr\r\n" in trace[cut:]
    ended: list[CallEnded] = []
    all_hung_up = asyncio.Event()
    seen: list[Hangup] = []

    def count_hangups(events: list[Hangup]) -> None:
        seen.extend(events)
        if len(seen) == hangups:
            all_hung_up.set()

    async def record(batch: list[CallEvent]) -> None:
        ended.extend(e for e in batch if isinstance(e, CallEnded))

    async with FakeAmi([Session(play=trace[:cut])], secret=SECRET) as pbx:
        tracker = CallTracker(re.compile(DEFAULT_DEVICE_PATTERN), cdr_grace_s=3600)
        ami = AmiPipeline.build(config(pbx.port), tracker, tick_s=3600)
        ami.events.observe(count_hangups, (Hangup,))
        ami.events.subscribe(record, CALL_EVENT_TYPES, lossless=True, batch=True)
        await ami.start()
        try:
            await asyncio.wait_for(all_hung_up.wait(), WAIT)
            assert ended == [] and tracker.active_calls == 1  # held for its Cdrs
        finally:
            await ami.stop()
    (call,) = ended
    assert call.call_id == "1796193854.126"
