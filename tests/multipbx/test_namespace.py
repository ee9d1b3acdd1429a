"""The namespacing boundary, attribution of FastAGI requests, and several PBXs read as one:
pure code, tested with literals and a recorded trace."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.agi.attribution import pbx_argument, site_for_request
from bridge.agi.protocol import AgiEnv
from bridge.ami.protocol import AmiParser
from bridge.ami_replay import ReplayClock, replay, replay_frames
from bridge.component import State
from bridge.config import DEFAULT_DEVICE_PATTERN, AmiConfig, PbxSite
from bridge.devices import DevicePatterns, device_of
from bridge.errors import LinkDown
from bridge.models import CallEnded, CallRinging, InboundCall
from bridge.pbx.group import aggregate_state
from bridge.pbx.live import PbxCalls
from bridge.pbx.namespace import (
    NamespacedTracker,
    QualifiedDevices,
    caller_e164,
    namespace_event,
)
from bridge.pbx_events import AttendedTransfer, CdrRecord, Hangup, NewChannel
from bridge.tracker import CallTracker
from bridge.wallboard.ami import PauseFailed
from bridge.wallboard.pbx_queues import PbxQueues
from bridge.wallboard.stats import Member

AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
EAST = PbxSite("east", namespaced=True)
WEST = PbxSite("west", namespaced=True)
PATTERNS = DevicePatterns.parse(DEFAULT_DEVICE_PATTERN)


def test_every_uniqueid_and_linkedid_field_is_prefixed_and_nothing_else() -> None:
    hangup = Hangup(AT, "1.5", "1.2", "PJSIP/1001-00000001", 16, "Normal Clearing")
    assert namespace_event(hangup, "east:") == Hangup(
        AT, "east:1.5", "east:1.2", "PJSIP/1001-00000001", 16, "Normal Clearing"
    )
    assert namespace_event(hangup, "") is hangup
    fields: dict[str, Any] = {
        f: "" for f in AttendedTransfer.__dataclass_fields__ if f not in ("at", "success")
    }
    fields.update(transferee_uniqueid="1.1", target_linkedid="1.3", transferee_channel="X/1")
    moved = namespace_event(AttendedTransfer(at=AT, success=True, **fields), "w:")
    assert (moved.transferee_uniqueid, moved.target_linkedid) == ("w:1.1", "w:1.3")
    assert moved.transferee_channel == "X/1" and moved.orig_transferer_uniqueid == ""  # empty
    call = InboundCall("+1555", "+1555", "", "100", AT, "PJSIP/t-1", "1.7", "1.7")
    assert namespace_event(call, "east:").linkedid == "east:1.7"


def test_a_cdr_has_no_linkedid_but_its_uniqueid_is_prefixed() -> None:
    cdr = CdrRecord(AT, "1.5", "SIP/t-1", "PJSIP/1001-2", "+1", "100", "ANSWERED", 3, 5, "", "", "")
    assert namespace_event(cdr, "east:").uniqueid == "east:1.5"


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        ("PJSIP/1001-0000000a", "east:1001"),
        ("Local/1001@from-queue-0000001f;1", "east:1001"),
        ("Dongle/whatever", None),
        ("", None),
    ],
)
def test_qualified_devices_prefix_the_extension(channel: str, expected: str | None) -> None:
    assert device_of(QualifiedDevices(PATTERNS, "east:"), channel) == expected
    assert device_of(QualifiedDevices(PATTERNS, ""), channel) == (
        expected.removeprefix("east:") if expected else None
    )


def test_two_trackers_fed_the_same_trace_name_their_calls_apart(traces: Path) -> None:
    """The same recorded call on two PBXs: same Linkedids, two namespaced calls."""
    trace = (traces / "vip-answered" / "ami.log").read_bytes()
    got: dict[str, list[Any]] = {}
    for site in (EAST, WEST):
        tracker = NamespacedTracker(site, QualifiedDevices(PATTERNS, site.prefix))
        got[site.name] = replay(trace, tracker)
    plain = replay(trace, CallTracker(PATTERNS))
    assert len(got["east"]) == len(got["west"]) == len(plain) > 0
    for east, west, bare_event in zip(got["east"], got["west"], plain, strict=True):
        assert east.call_id == f"east:{bare_event.call_id}"
        assert west.call_id == f"west:{bare_event.call_id}"
        if isinstance(bare_event, CallRinging):
            assert east.device == f"east:{bare_event.device}"
    ended = [e for e in got["east"] if isinstance(e, CallEnded)]
    assert ended and all(u.startswith("east:") for u in ended[0].summary.uniqueids)


def env(**values: str) -> AgiEnv:
    return AgiEnv(values)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"network_script": "route?pbx=east"}, "east"),
        ({"network_script": "route", "request": "agi://b:4573/route?pbx=west&x=1"}, "west"),
        ({"network_script": "route"}, None),
        ({"network_script": "route?pbx="}, None),
        ({"network_script": "route?" + "&".join(f"a{i}=1" for i in range(50))}, None),
        ({"network_script": "route?pbx=%00%0d%0a"}, "\x00\r\n"),  # hostile: matches no PBX
    ],
)
def test_the_pbx_argument_of_the_agi_url(values: dict[str, str], expected: str | None) -> None:
    assert pbx_argument(env(**values)) == expected


def test_a_route_request_is_attributed_by_argument_only_pbx_or_ami_host() -> None:
    east = PbxSite("east", namespaced=True)
    west = PbxSite("west", ami=AmiConfig(host="10.0.0.2"), namespaced=True)
    sites = (east, west)
    assert site_for_request(env(network_script="route?pbx=west"), "10.9.9.9", sites) is west
    assert site_for_request(env(network_script="route?pbx=nope"), "10.0.0.2", sites) is None
    assert site_for_request(env(network_script="route"), "10.0.0.2", sites) is west
    assert site_for_request(env(network_script="route"), "10.9.9.9", sites) is None
    assert site_for_request(env(network_script="route"), None, sites) is None
    legacy = PbxSite("default")
    assert site_for_request(env(network_script="route?pbx=x"), None, (legacy,)) is legacy


def test_a_pbx_cannot_claim_another_pbxs_namespace_by_argument() -> None:
    """East's dialplan (from east's AMI host) asking `?pbx=west` would record the first
    decision under `west:<linkedid>` and win over west's own: not attributed, not recorded."""
    east = PbxSite("east", ami=AmiConfig(host="10.0.0.1"), namespaced=True)
    west = PbxSite("west", ami=AmiConfig(host="10.0.0.2"), namespaced=True)
    sites = (east, west)
    assert site_for_request(env(network_script="route?pbx=west"), "10.0.0.1", sites) is None
    assert site_for_request(env(request="agi://b/route?pbx=west"), "10.0.0.1", sites) is None
    assert site_for_request(env(network_script="route?pbx=east"), "10.0.0.1", sites) is east
    assert site_for_request(env(network_script="route?pbx=west"), "10.0.0.2", sites) is west


def test_a_request_url_that_does_not_parse_names_no_pbx_and_raises_nothing() -> None:
    west = PbxSite("west", ami=AmiConfig(host="10.0.0.2"), namespaced=True)
    sites = (PbxSite("east", namespaced=True), west)
    assert site_for_request(env(request="agi://[::1/route?pbx=west"), "10.9.9.9", sites) is None
    assert site_for_request(env(request="agi://[::1/route?pbx=west"), "10.0.0.2", sites) is west


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["up", "up"], "up"),
        (["up", "down"], "degraded"),
        (["down", "down"], "down"),
        (["starting", "down"], "down"),
        (["starting", "starting"], "starting"),
        (["starting", "up"], "degraded"),
        (["up", "degraded"], "degraded"),
        ([], "disabled"),
    ],
)
def test_aggregate_link_state(states: list[State], expected: State) -> None:
    assert aggregate_state(states) == expected


def test_pbx_calls_answer_from_the_tracker_that_has_the_call(traces: Path) -> None:
    frames = AmiParser().feed((traces / "vip-answered" / "ami.log").read_bytes())
    east = NamespacedTracker(EAST, QualifiedDevices(PATTERNS, EAST.prefix))
    west = NamespacedTracker(WEST, QualifiedDevices(PATTERNS, WEST.prefix))
    calls = PbxCalls([east, west])
    clock = ReplayClock()
    ringing = None
    for frame in frames:  # west's call, up to its first ringing agent
        events = replay_frames([frame], west, clock, flush=False)
        ringing = next((e for e in events if isinstance(e, CallRinging)), None)
        if ringing is not None:
            break
    assert ringing is not None and ringing.call_id.startswith("west:")
    assert [c.call_id for c in calls.snapshot()] == [ringing.call_id]
    assert calls.view(ringing.call_id) is not None and calls.active_calls == 1
    assert calls.view(ringing.call_id.replace("west:", "east:", 1)) is None
    assert ringing in calls.catch_up(ringing.device)
    assert calls.catch_up(ringing.device.replace("west:", "east:", 1)) == []


class Control:
    def __init__(self, members: list[Member] | Exception) -> None:
        self._members = members
        self.paused: list[str] = []

    async def members(self) -> list[Member]:
        if isinstance(self._members, Exception):
            raise self._members
        return self._members

    async def pause(self, device: str, paused: bool, reason: str) -> int:
        self.paused.append(device)
        return 1


async def test_queue_members_of_a_pbx_that_is_down_are_left_out_not_everyone() -> None:
    east = Control([Member("support", "east:1001")])
    west = Control(LinkDown("west is down"))
    queues = PbxQueues([("east:", east), ("west:", west)])
    assert await queues.members() == [Member("support", "east:1001")]
    assert await queues.pause("west:1001", True, "") == 1 and west.paused == ["west:1001"]
    with pytest.raises(PauseFailed):
        await queues.pause("south:1001", True, "")
    with pytest.raises(LinkDown):
        await PbxQueues([("west:", west)]).members()


class Silent(Control):
    async def members(self) -> list[Member]:
        await asyncio.Event().wait()  # a half-open link: never answers
        return []


async def test_a_pbx_that_never_answers_does_not_hold_the_others_members() -> None:
    east = Control([Member("support", "east:1001")])
    queues = PbxQueues([("east:", east), ("west:", Silent([]))], timeout_s=0.05)
    assert await queues.members() == [Member("support", "east:1001")]


@pytest.mark.parametrize(
    ("number", "region", "expected"),
    [
        ("02079460000", "GB", "+442079460000"),
        ("2025550143", "US", "+12025550143"),
        ("+15551230001", "GB", "+15551230001"),
        ("1001", "GB", "1001"),  # an extension stays one
        ("", "GB", ""),
        ("anonymous", "US", "anonymous"),
    ],
)
def test_a_namespaced_pbxs_caller_numbers_are_read_in_its_own_region(
    number: str, region: str, expected: str
) -> None:
    channel = NewChannel(AT, "1.1", "1.1", "PJSIP/trunk-1", 4, number, "", "100", "from-trunk")
    assert caller_e164(channel, region).caller_num == expected
    hangup = Hangup(AT, "1.5", "1.2", "PJSIP/1001-00000001", 16, "Normal Clearing")
    assert caller_e164(hangup, region) is hangup  # no caller number to read
