"""Every recorded Asterisk scenario, replayed byte for byte through parser, decoder and
tracker, yields exactly the expected call events; so does the same call with PJSIP names."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bridge.ami_replay import replay
from bridge.config import DEFAULT_DEVICE_PATTERN
from bridge.models import (
    CallAnswered,
    CallDialing,
    CallEnded,
    CallEvent,
    CallRetracted,
    CallRinging,
    CallTransferred,
)
from bridge.tracker import CallTracker
from tests.conftest import SCENARIOS, TRACES
from tests.tracker.pjsip import pjsip_bytes

AMI_SCENARIOS = [s for s in SCENARIOS if (TRACES / s / "ami.log").exists()]


def describe(events: list[CallEvent]) -> list[tuple[Any, ...]]:
    """Events as comparable tuples, without channel names, ids and synthetic times."""
    out: list[tuple[Any, ...]] = []
    for e in events:
        if isinstance(e, CallRinging):
            ringing = ("ringing", e.call_id, e.device, e.caller, e.caller_name, e.queue)
            # A transfer or consultation names who hands the call over.
            out.append((*ringing, ("from", e.transfer_from)) if e.transfer_from else ringing)
        elif isinstance(e, CallDialing):
            out.append(("dialing", e.call_id, e.device, e.number))
        elif isinstance(e, CallAnswered):
            out.append(("answered", e.call_id, e.device))
        elif isinstance(e, CallRetracted):
            out.append(("retracted", e.call_id, e.device, e.reason))
        elif isinstance(e, CallTransferred):
            out.append(("transferred", e.call_id, e.from_device, e.to_device))
        else:
            s = e.summary
            out.append(
                (
                    "ended",
                    e.call_id,
                    s.outcome,
                    s.queue,
                    s.caller,
                    s.talk_s,
                    tuple((a.device, a.talk_s) for a in s.agents),
                    Path(s.recording_path).name if s.recording_path else None,
                    *((s.direction,) if s.direction != "inbound" else ()),
                )
            )
    return out


# The lab's agents (the roster): every other extension a channel name carries is no agent.
LAB_AGENTS = frozenset({"1001", "1002", "2001", "2002"})


def tracker() -> CallTracker:
    return CallTracker(re.compile(DEFAULT_DEVICE_PATTERN), is_agent=LAB_AGENTS.__contains__)


def run(scenario: str, *, pjsip: bool = False) -> list[CallEvent]:
    data = (TRACES / scenario / "ami.log").read_bytes()
    if pjsip:
        data = pjsip_bytes(data)
    return replay(data, tracker())


ALICE = ("+15551230001", "Alice VIP")
BOB = ("+15551230002", "Bob")

EXPECTED: dict[str, list[tuple[Any, ...]]] = {
    "abandoned": [
        ("ringing", "1795464264.20", "1001", *BOB, "support"),
        ("retracted", "1795464264.20", "1001", "caller_gone"),
        (
            "ended",
            "1795464264.20",
            "abandoned",
            "support",
            "+15551230002",
            0,
            (),
            None,  # MixMonitor ran, but nobody answered: no recording to point at
        ),
    ],
    "anonymous": [
        ("ringing", "1795464267.24", "1002", "anonymous", "Anonymous", "support"),
        ("answered", "1795464267.24", "1002"),
        (
            "ended",
            "1795464267.24",
            "answered",
            "support",
            "anonymous",
            1,
            (("1002", 1),),
            "1795464267.25.wav",
        ),
    ],
    "ari-vip": [
        ("ringing", "1795464289.66", "2001", *ALICE, "senior"),
        ("ringing", "1795464289.66", "2002", *ALICE, "senior"),
        ("answered", "1795464289.66", "2001"),
        ("retracted", "1795464289.66", "2002", "answered_elsewhere"),
        (
            "ended",
            "1795464289.66",
            "answered",
            "senior",
            "+15551230001",
            1,
            (("2001", 1),),
            "1795464289.67.wav",
        ),
    ],
    # Atxfer: 1001 consults 2001 with the customer on hold, then hangs up to complete. 2001 is
    # popped with the customer's card while consulted, answered once (at completion); 1001's
    # time is the queue's TalkTime (up to completion), 2001's the caller's Cdr toward it.
    "attended-transfer": [
        ("ringing", "1796179604.0", "1001", *BOB, "support"),
        ("answered", "1796179604.0", "1001"),
        ("ringing", "1796179604.0", "2001", *BOB, "support", ("from", "1001")),
        ("transferred", "1796179604.0", "1001", "2001"),
        ("answered", "1796179604.0", "2001"),
        (
            "ended",
            "1796179604.0",
            "answered",
            "support",
            "+15551230002",
            7,
            (("1001", 6), ("2001", 1)),
            "1796179604.1.wav",
        ),
    ],
    "blind-transfer": [
        ("ringing", "1795464271.28", "1001", *BOB, "support"),
        ("answered", "1795464271.28", "1001"),
        ("ringing", "1795464271.28", "2001", *BOB, "support", ("from", "1001")),
        ("transferred", "1795464271.28", "1001", "2001"),
        ("answered", "1795464271.28", "2001"),
        (
            "ended",
            "1795464271.28",
            "answered",
            "support",
            "+15551230002",
            5,
            (("1001", 1), ("2001", 4)),
            "1795464271.29.wav",
        ),
    ],
    "regular-answered": [
        ("ringing", "1795464251.6", "1001", *BOB, "support"),
        ("answered", "1795464251.6", "1001"),
        (
            "ended",
            "1795464251.6",
            "answered",
            "support",
            "+15551230002",
            2,
            (("1001", 2),),
            "1795464251.7.wav",
        ),
    ],
    "unicode-name": [
        ("ringing", "1795464259.14", "2001", "+8613800138000", "张伟", "senior"),
        ("ringing", "1795464259.14", "2002", "+8613800138000", "张伟", "senior"),
        ("answered", "1795464259.14", "2001"),
        ("retracted", "1795464259.14", "2002", "answered_elsewhere"),
        (
            "ended",
            "1795464259.14",
            "answered",
            "senior",
            "+8613800138000",
            2,
            (("2001", 2),),
            "1795464259.15.wav",
        ),
    ],
    "unknown-caller": [
        ("ringing", "1795464255.10", "1002", "+442071838750", "", "support"),
        ("answered", "1795464255.10", "1002"),
        (
            "ended",
            "1795464255.10",
            "answered",
            "support",
            "+442071838750",
            2,
            (("1002", 2),),
            "1795464255.11.wav",
        ),
    ],
    "vip-answered": [
        ("ringing", "1795464246.0", "2001", *ALICE, "senior"),
        ("ringing", "1795464246.0", "2002", *ALICE, "senior"),
        ("answered", "1795464246.0", "2001"),
        ("retracted", "1795464246.0", "2002", "answered_elsewhere"),
        (
            "ended",
            "1795464246.0",
            "answered",
            "senior",
            "+15551230001",
            2,
            (("2001", 2),),
            "1795464246.1.wav",
        ),
    ],
    "vip-answered-least-privilege": [
        ("ringing", "1795464844.34", "2001", *ALICE, "senior"),
        ("ringing", "1795464844.34", "2002", *ALICE, "senior"),
        ("answered", "1795464844.34", "2001"),
        ("retracted", "1795464844.34", "2002", "answered_elsewhere"),
        ("ended", "1795464844.34", "answered", "senior", "+15551230001", 2, (("2001", 2),), None),
    ],
}


def _concurrent_expected() -> list[tuple[Any, ...]]:
    # (linkedid, caller suffix, agent) in the order the queue served them, and the
    # interleaving the trace shows: call n+1 rings and is answered before call n ends.
    served = [
        ("1795464278.34", "1000", "1002"),
        ("1795464278.38", "1002", "1001"),
        ("1795464278.36", "1001", "1002"),
        ("1795464278.42", "1004", "1001"),
        ("1795464278.40", "1003", "1002"),
        ("1795464278.46", "1006", "1001"),
        ("1795464278.44", "1005", "1002"),
        ("1795464278.48", "1007", "1001"),
    ]
    out: list[tuple[Any, ...]] = []
    previous: tuple[Any, ...] | None = None
    for call_id, n, agent in served:
        out.append(("ringing", call_id, agent, f"+1555123{n}", f"Caller {n}", "support"))
        out.append(("answered", call_id, agent))
        if previous is not None:
            out.append(previous)
        previous = ("ended", call_id, "answered", "support", f"+1555123{n}", 2, ((agent, 2),))
        previous += (f"{call_id.split('.')[0]}.{int(call_id.split('.')[1]) + 1}.wav",)
    assert previous is not None
    out.append(previous)
    return out


EXPECTED["concurrent-8"] = _concurrent_expected()

# Real-PBX shapes (issues 19, 20): Local hops, Dial()-made queues, follow-me, dial-outs.
EXPECTED.update(
    {
        "fpbx-queue": [
            ("ringing", "1796193840.108", "1002", "+15551230002", "Bob", "fpbx"),
            ("ringing", "1796193840.108", "1001", "+15551230002", "Bob", "fpbx"),
            ("answered", "1796193840.108", "1001"),
            ("retracted", "1796193840.108", "1002", "answered_elsewhere"),
            (
                "ended",
                "1796193840.108",
                "answered",
                "fpbx",
                "+15551230002",
                3,
                (("1001", 3),),
                "1796193840.109.wav",
            ),
        ],
        "fpbx-blind-transfer": [
            ("ringing", "1796193904.156", "1002", "+15551230002", "Bob", "fpbx"),
            ("ringing", "1796193904.156", "1001", "+15551230002", "Bob", "fpbx"),
            ("answered", "1796193904.156", "1001"),
            ("retracted", "1796193904.156", "1002", "answered_elsewhere"),
            ("ringing", "1796193904.156", "2001", "+15551230002", "Bob", "fpbx", ("from", "1001")),
            ("transferred", "1796193904.156", "1001", "2001"),
            ("answered", "1796193904.156", "2001"),
            (
                "ended",
                "1796193904.156",
                "answered",
                "fpbx",
                "+15551230002",
                6,
                (("1001", 1), ("2001", 5)),
                "1796193904.157.wav",
            ),
        ],
        "fpbx-attended-transfer": [
            ("ringing", "1796193915.168", "1002", "+15551230002", "Bob", "fpbx"),
            ("ringing", "1796193915.168", "1001", "+15551230002", "Bob", "fpbx"),
            ("answered", "1796193915.168", "1001"),
            ("retracted", "1796193915.168", "1002", "answered_elsewhere"),
            ("ringing", "1796193915.168", "2001", "+15551230002", "Bob", "fpbx", ("from", "1001")),
            ("transferred", "1796193915.168", "1001", "2001"),
            ("answered", "1796193915.168", "2001"),
            (
                "ended",
                "1796193915.168",
                "answered",
                "fpbx",
                "+15551230002",
                11,
                (("1001", 3), ("2001", 8)),
                "1796193915.169.wav",
            ),
        ],
        "ringgroup": [
            ("ringing", "1796193847.118", "1001", "+15551230002", "Bob", "600"),
            ("ringing", "1796193847.118", "1002", "+15551230002", "Bob", "600"),
            ("retracted", "1796193847.118", "1002", "answered_elsewhere"),
            ("answered", "1796193847.118", "1001"),
            (
                "ended",
                "1796193847.118",
                "answered",
                "600",
                "+15551230002",
                2,
                (("1001", 2),),
                "1796193847.119.wav",
            ),
        ],
        "direct-inward": [
            ("ringing", "1796193854.126", "1001", "+15551230002", "Bob", None),
            ("answered", "1796193854.126", "1001"),
            (
                "ended",
                "1796193854.126",
                "answered",
                None,
                "+15551230002",
                3,
                (("1001", 3),),
                "1796193854.127.wav",
            ),
        ],
        "followme-mobile": [
            ("ringing", "1796193861.130", "1001", "+15551230002", "Bob", None),
            ("retracted", "1796193861.130", "1001", "no_answer"),
            (
                "ended",
                "1796193861.130",
                "answered",
                None,
                "+15551230002",
                0,
                (),
                "1796193861.131.wav",
            ),
        ],
        "dial-out-phone": [
            ("dialing", "1796195448.322", "1001", "15551230002"),
            ("answered", "1796195448.322", "1001"),
            (
                "ended",
                "1796195448.322",
                "answered",
                None,
                "15551230002",
                4,
                (("1001", 4),),
                "1796195448.322.wav",
                "outbound",
            ),
        ],
        "dial-out-unanswered": [
            ("dialing", "1796195456.326", "1001", "15551230002"),
            ("retracted", "1796195456.326", "1001", "no_answer"),
            ("ended", "1796195456.326", "unanswered", None, "15551230002", 0, (), None, "outbound"),
        ],
        "click-to-dial-pbx": [
            ("dialing", "1796195463.330", "1001", "15551230002"),
            ("answered", "1796195463.330", "1001"),
            (
                "ended",
                "1796195463.330",
                "answered",
                None,
                "15551230002",
                4,
                (("1001", 4),),
                "1796195463.330.wav",
                "outbound",
            ),
        ],
        "click-to-call": [
            ("dialing", "c2d-428c4c17805c262c", "1001", "15551230002"),
            ("answered", "c2d-428c4c17805c262c", "1001"),
            (
                "ended",
                "c2d-428c4c17805c262c",
                "answered",
                None,
                "15551230002",
                2,
                (("1001", 2),),
                "c2d-428c4c17805c262c.wav",
                "outbound",
            ),
        ],
        "click-to-call-unanswered": [
            ("dialing", "c2d-018278293f90aff1", "1001", "15551230001"),
            ("retracted", "c2d-018278293f90aff1", "1001", "no_answer"),
            (
                "ended",
                "c2d-018278293f90aff1",
                "unanswered",
                None,
                "15551230001",
                0,
                (),
                None,
                "outbound",
            ),
        ],
        "internal-call": [
            ("ringing", "1796193897.152", "2001", "1001", "Agent 1001", None),
            ("answered", "1796193897.152", "2001"),
            ("answered", "1796193897.152", "1001"),
            (
                "ended",
                "1796193897.152",
                "answered",
                None,
                "1001",
                6,
                (("1001", 3), ("2001", 3)),
                None,
                "internal",
            ),
        ],
    }
)


def test_every_ami_scenario_has_an_expectation() -> None:
    assert set(AMI_SCENARIOS) == set(EXPECTED)


@pytest.mark.parametrize("pjsip", [False, True], ids=["local", "pjsip"])
@pytest.mark.parametrize("scenario", AMI_SCENARIOS)
def test_replay_emits_the_exact_call_events(scenario: str, pjsip: bool) -> None:
    assert describe(run(scenario, pjsip=pjsip)) == EXPECTED[scenario]


@pytest.mark.parametrize("pjsip", [False, True], ids=["local", "pjsip"])
@pytest.mark.parametrize("scenario", AMI_SCENARIOS)
def test_replay_agrees_with_the_scenario_facts(scenario: str, pjsip: bool) -> None:
    facts = json.loads((TRACES / scenario / "scenario.json").read_text())
    events = run(scenario, pjsip=pjsip)
    ended = [e for e in events if isinstance(e, CallEnded)]
    callers = facts.get("callers") or [facts["caller"]]
    assert sorted(e.summary.caller for e in ended) == sorted(callers)
    assert len({e.call_id for e in ended}) == len(ended)  # one CallEnded per call
    for e in ended:
        s = e.summary
        assert s.call_id == e.call_id
        assert s.queue == facts["queue"]
        if "answered" in facts:
            assert (s.outcome == "answered") == facts["answered"]
        if "talk_s" in facts:
            assert s.talk_s == facts["talk_s"]
        if facts.get("recording"):
            least_privilege = "ami_user" in facts  # no VarSet for a read=call,agent,cdr user
            assert (s.recording_path is None) == least_privilege
        assert s.started_at <= (s.answered_at or s.ended_at) <= s.ended_at
        assert s.inferred == ()
        assert s.call_id in s.uniqueids
        # Every event of a call carries its Linkedid, in time order.
        times = [x.at for x in events if x.call_id == e.call_id]
        assert times == sorted(times)


@pytest.mark.parametrize("scenario", AMI_SCENARIOS)
def test_pjsip_names_reach_consumers(scenario: str) -> None:
    local = [e.channel for e in run(scenario) if isinstance(e, CallRinging)]
    pjsip = [e.channel for e in run(scenario, pjsip=True) if isinstance(e, CallRinging)]
    assert all(c.startswith("Local/") and c.endswith(";1") for c in local)
    # A FreePBX queue rings its member's Local hop (kept: a real PBX has it too).
    hop = r"Local/\d{4}@(?:from-queue|followme)-[0-9a-f]{8};1"
    assert all(re.fullmatch(rf"PJSIP/\d{{4}}-[0-9a-f]{{8}}|{hop}", c) for c in pjsip)
    assert [c.split("/")[1][:4] for c in local] == [c.split("/")[1][:4] for c in pjsip]


def test_pjsip_rewrite_really_has_one_channel_per_party() -> None:
    data = pjsip_bytes((TRACES / "vip-answered" / "ami.log").read_bytes())
    assert b"Local/" not in data
    assert b"LocalBridge" not in data
    names = set(re.findall(rb"^Channel: (\S+)\r$", data, flags=re.M))
    assert names == {b"PJSIP/trunk-00000000", b"PJSIP/2001-00000001", b"PJSIP/2002-00000002"}


def test_blind_transfer_talk_times_come_from_asterisk_figures() -> None:
    (ended,) = [e for e in run("blind-transfer") if isinstance(e, CallEnded)]
    legs = ended.summary.agents
    assert [(a.device, a.talk_s) for a in legs] == [("1001", 1), ("2001", 4)]
    assert legs[0].answered_at < legs[1].answered_at
    assert ended.summary.answered_at == legs[0].answered_at


def test_interleaved_calls_keep_their_own_events() -> None:
    """Each call keeps its own Linkedid even when eight are interleaved."""
    events = run("concurrent-8")
    by_call: dict[str, list[str]] = {}
    for e in events:
        by_call.setdefault(e.call_id, []).append(type(e).__name__)
    assert len(by_call) == 8
    assert all(v == ["CallRinging", "CallAnswered", "CallEnded"] for v in by_call.values())


REAL_PBX = [s for s in AMI_SCENARIOS if (TRACES / s / "dialplan.conf").exists()]


@pytest.mark.parametrize("pjsip", [False, True], ids=["local", "pjsip"])
@pytest.mark.parametrize("scenario", REAL_PBX)
def test_no_hop_or_trunk_is_ever_taken_for_an_agent(scenario: str, pjsip: bool) -> None:
    """Local hops (`from-queue`, `ringgroup`, `followme`, `ringagent`) and trunks name
    extensions too; only the roster's devices are agents, in every event and record."""
    events = run(scenario, pjsip=pjsip)
    devices = {getattr(e, "device", None) for e in events} - {None}
    for e in events:
        if isinstance(e, CallEnded):
            devices |= {a.device for a in e.summary.agents}
        if isinstance(e, CallTransferred):
            devices |= {e.to_device} | ({e.from_device} if e.from_device else set())
    assert devices and devices <= LAB_AGENTS


def test_without_a_roster_calls_are_inbound_as_before() -> None:
    """A tracker that is not told who the agents are takes no call for one an agent placed."""
    data = (TRACES / "dial-out-phone" / "ami.log").read_bytes()
    events = replay(data, CallTracker(re.compile(DEFAULT_DEVICE_PATTERN)))
    assert not any(isinstance(e, CallDialing) for e in events)
    (ended,) = [e for e in events if isinstance(e, CallEnded)]
    assert ended.summary.direction == "inbound"
