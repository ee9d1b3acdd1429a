"""The pop router, by tables: each recorded call replayed through the tracker, and who gets
which message, in what order. Pure: no sockets, no database."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from bridge.ami.decode import decode_event
from bridge.ami.protocol import AmiParser
from bridge.ami_replay import ReplayClock
from bridge.config import DEFAULT_DEVICE_PATTERN
from bridge.models import (
    AgentLeg,
    CallAnswered,
    CallEnded,
    CallRetracted,
    CallRinging,
    CallSummary,
    CallTransferred,
)
from bridge.pops.router import Pop, PopRouter
from bridge.tracker import CallTracker
from tests.conftest import TRACES
from tests.tracker.pjsip import pjsip_bytes

AGENTS = {"1001": "ann", "1002": "ben", "2001": "cat", "2002": "dan"}
AT = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)


def to(pop: Pop) -> str:
    return pop.device if pop.device is not None else f"queue:{pop.queue}"


def row(pop: Pop) -> tuple[Any, ...]:
    """(addressee, type, the fields that say who, card or not)."""
    m = pop.message
    extra = {k: m[k] for k in ("agent", "from_agent", "transfer_from", "reason") if k in m}
    return (to(pop), pop.kind, extra, pop.card)


def routed(scenario: str, *, pjsip: bool = False) -> list[tuple[Any, ...]]:
    """Replay a trace through a tracker and a router, as the AMI link and hub do."""
    data = (TRACES / scenario / "ami.log").read_bytes()
    if pjsip:
        data = pjsip_bytes(data)
    tracker = CallTracker(re.compile(DEFAULT_DEVICE_PATTERN), is_agent=AGENTS.__contains__)
    router = PopRouter(AGENTS.get)
    clock = ReplayClock()
    out: list[tuple[Any, ...]] = []

    def route(events: list[Any]) -> None:
        for event in events:
            out.extend(row(p) for p in router.route(event, tracker.view(event.call_id)))

    for frame in AmiParser().feed(data):
        event = decode_event(frame, clock())
        if event is not None:
            route(tracker.feed(event))
    route(tracker.flush())
    return out


RING, CARD = "call.ringing", True
EXPECTED: dict[str, list[tuple[Any, ...]]] = {
    "vip-answered": [
        ("2001", RING, {}, CARD),
        ("queue:senior", RING, {}, CARD),  # followers hear of the call once, at its first ring
        ("2002", RING, {}, CARD),
        ("2001", "call.answered", {"agent": "cat"}, False),
        ("queue:senior", "call.answered", {"agent": "cat"}, False),
        ("2002", "call.retracted", {"reason": "answered_elsewhere"}, False),
        ("2001", "call.ended", {}, False),
        ("queue:senior", "call.ended", {}, False),
    ],
    "abandoned": [
        ("1001", RING, {}, CARD),
        ("queue:support", RING, {}, CARD),
        ("1001", "call.retracted", {"reason": "caller_gone"}, False),
        ("queue:support", "call.ended", {}, False),  # nobody talked: only followers
    ],
    "blind-transfer": [
        ("1001", RING, {}, CARD),
        ("queue:support", RING, {}, CARD),
        ("1001", "call.answered", {"agent": "ann"}, False),
        ("queue:support", "call.answered", {"agent": "ann"}, False),
        ("2001", RING, {"transfer_from": "ann"}, CARD),  # rings through Dial: the card then
        ("1001", "call.transferred", {"agent": "cat", "from_agent": "ann"}, False),
        ("2001", "call.transferred", {"agent": "cat", "from_agent": "ann"}, False),
        ("queue:support", "call.transferred", {"agent": "cat", "from_agent": "ann"}, False),
        # the transferer still follows its call: it learns who picked up, and the end
        ("1001", "call.answered", {"agent": "cat"}, False),
        ("2001", "call.answered", {"agent": "cat"}, False),
        ("queue:support", "call.answered", {"agent": "cat"}, False),
        ("1001", "call.ended", {}, False),
        ("2001", "call.ended", {}, False),
        ("queue:support", "call.ended", {}, False),
    ],
    # Atxfer: 1001 consults 2001 with the customer on hold, then hangs up to complete it.
    "attended-transfer": [
        ("1001", RING, {}, CARD),
        ("queue:support", RING, {}, CARD),
        ("1001", "call.answered", {"agent": "ann"}, False),
        ("queue:support", "call.answered", {"agent": "ann"}, False),
        # consulted: the customer's card, and who is consulting; picking up is not answering
        ("2001", RING, {"transfer_from": "ann"}, CARD),
        # completed: the transferer's page says to whom the call went; 2001 answers once
        ("1001", "call.transferred", {"agent": "cat", "from_agent": "ann"}, False),
        ("2001", "call.transferred", {"agent": "cat", "from_agent": "ann"}, False),
        ("queue:support", "call.transferred", {"agent": "cat", "from_agent": "ann"}, False),
        ("1001", "call.answered", {"agent": "cat"}, False),
        ("2001", "call.answered", {"agent": "cat"}, False),
        ("queue:support", "call.answered", {"agent": "cat"}, False),
        ("1001", "call.ended", {}, False),
        ("2001", "call.ended", {}, False),
        ("queue:support", "call.ended", {}, False),
    ],
}


# Real-PBX shapes (issues 19, 20). A FreePBX queue's Local hops and a ring group's hop are
# never addressed; a follow-me that reached the agent's mobile ends with no agent to tell;
# an agent's own outbound call pops `call.dialing` with the dialled customer's card, then
# `call.answered`; a call between agents rings with no customer card.
EXPECTED.update(
    {
        "fpbx-queue": [
            ("1002", RING, {}, CARD),
            ("queue:fpbx", RING, {}, CARD),
            ("1001", RING, {}, CARD),
            ("1001", "call.answered", {"agent": "ann"}, False),
            ("queue:fpbx", "call.answered", {"agent": "ann"}, False),
            ("1002", "call.retracted", {"reason": "answered_elsewhere"}, False),
            ("1001", "call.ended", {}, False),
            ("queue:fpbx", "call.ended", {}, False),
        ],
        "fpbx-blind-transfer": [
            ("1002", RING, {}, CARD),
            ("queue:fpbx", RING, {}, CARD),
            ("1001", RING, {}, CARD),
            ("1001", "call.answered", {"agent": "ann"}, False),
            ("queue:fpbx", "call.answered", {"agent": "ann"}, False),
            ("1002", "call.retracted", {"reason": "answered_elsewhere"}, False),
            ("2001", RING, {"transfer_from": "ann"}, CARD),
            ("1001", "call.transferred", {"agent": "cat", "from_agent": "ann"}, False),
            ("2001", "call.transferred", {"agent": "cat", "from_agent": "ann"}, False),
            ("queue:fpbx", "call.transferred", {"agent": "cat", "from_agent": "ann"}, False),
            ("1001", "call.answered", {"agent": "cat"}, False),
            ("2001", "call.answered", {"agent": "cat"}, False),
            ("queue:fpbx", "call.answered", {"agent": "cat"}, False),
            ("1001", "call.ended", {}, False),
            ("2001", "call.ended", {}, False),
            ("queue:fpbx", "call.ended", {}, False),
        ],
        "fpbx-attended-transfer": [
            ("1002", RING, {}, CARD),
            ("queue:fpbx", RING, {}, CARD),
            ("1001", RING, {}, CARD),
            ("1001", "call.answered", {"agent": "ann"}, False),
            ("queue:fpbx", "call.answered", {"agent": "ann"}, False),
            ("1002", "call.retracted", {"reason": "answered_elsewhere"}, False),
            ("2001", RING, {"transfer_from": "ann"}, CARD),
            ("1001", "call.transferred", {"agent": "cat", "from_agent": "ann"}, False),
            ("2001", "call.transferred", {"agent": "cat", "from_agent": "ann"}, False),
            ("queue:fpbx", "call.transferred", {"agent": "cat", "from_agent": "ann"}, False),
            ("1001", "call.answered", {"agent": "cat"}, False),
            ("2001", "call.answered", {"agent": "cat"}, False),
            ("queue:fpbx", "call.answered", {"agent": "cat"}, False),
            ("1001", "call.ended", {}, False),
            ("2001", "call.ended", {}, False),
            ("queue:fpbx", "call.ended", {}, False),
        ],
        "ringgroup": [
            ("1001", RING, {}, CARD),
            ("queue:600", RING, {}, CARD),
            ("1002", RING, {}, CARD),
            ("1002", "call.retracted", {"reason": "answered_elsewhere"}, False),
            ("1001", "call.answered", {"agent": "ann"}, False),
            ("queue:600", "call.answered", {"agent": "ann"}, False),
            ("1001", "call.ended", {}, False),
            ("queue:600", "call.ended", {}, False),
        ],
        "direct-inward": [
            ("1001", RING, {}, CARD),
            ("1001", "call.answered", {"agent": "ann"}, False),
            ("1001", "call.ended", {}, False),
        ],
        "followme-mobile": [
            ("1001", RING, {}, CARD),
            ("1001", "call.retracted", {"reason": "no_answer"}, False),
        ],
        "dial-out-phone": [
            ("1001", "call.dialing", {"agent": "ann"}, CARD),
            ("1001", "call.answered", {"agent": "ann"}, False),
            ("1001", "call.ended", {}, False),
        ],
        "dial-out-unanswered": [
            ("1001", "call.dialing", {"agent": "ann"}, CARD),
            ("1001", "call.retracted", {"reason": "no_answer"}, False),
        ],
        "click-to-dial-pbx": [
            ("1001", "call.dialing", {"agent": "ann"}, CARD),
            ("1001", "call.answered", {"agent": "ann"}, False),
            ("1001", "call.ended", {}, False),
        ],
        "click-to-call": [
            ("1001", "call.dialing", {"agent": "ann"}, CARD),
            ("1001", "call.answered", {"agent": "ann"}, False),
            ("1001", "call.ended", {}, False),
        ],
        "click-to-call-unanswered": [
            ("1001", "call.dialing", {"agent": "ann"}, CARD),
            ("1001", "call.retracted", {"reason": "no_answer"}, False),
        ],
        "internal-call": [
            ("2001", RING, {}, False),
            ("1001", "call.answered", {"agent": "cat"}, False),
            ("2001", "call.answered", {"agent": "cat"}, False),
            ("1001", "call.answered", {"agent": "ann"}, False),
            ("2001", "call.answered", {"agent": "ann"}, False),
            ("1001", "call.ended", {}, False),
            ("2001", "call.ended", {}, False),
        ],
    }
)


@pytest.mark.parametrize("pjsip", [False, True], ids=["Local", "PJSIP"])
@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_each_recorded_call_reaches_exactly_these_pages_in_this_order(
    scenario: str, pjsip: bool
) -> None:
    assert routed(scenario, pjsip=pjsip) == EXPECTED[scenario]


def test_an_agent_who_rang_and_lost_gets_no_answer_and_no_end() -> None:
    got = routed("vip-answered")
    assert [r[1] for r in got if r[0] == "2002"] == ["call.ringing", "call.retracted"]


def test_interleaved_calls_each_keep_their_own_addressees() -> None:
    """Two recorded calls whose frames interleave: each page gets its own call's pops, in
    the order the PBX sent them."""
    frames = []
    for name in ("vip-answered", "regular-answered"):
        frames.append(list(AmiParser().feed((TRACES / name / "ami.log").read_bytes())))
    tracker = CallTracker(re.compile(DEFAULT_DEVICE_PATTERN))
    router = PopRouter(AGENTS.get)
    clock = ReplayClock()
    got: dict[str, list[str]] = {}
    for i in range(max(map(len, frames))):
        for stream in frames:
            if i < len(stream) and (event := decode_event(stream[i], clock())) is not None:
                for e in tracker.feed(event):
                    for pop in router.route(e, tracker.view(e.call_id)):
                        got.setdefault(to(pop), []).append(pop.kind)
    assert got["2001"] == ["call.ringing", "call.answered", "call.ended"]
    assert got["2002"] == ["call.ringing", "call.retracted"]
    assert got["1001"] == ["call.ringing", "call.answered", "call.ended"]


def test_a_transfer_target_that_never_rang_sees_the_card_first() -> None:
    router = PopRouter(AGENTS.get)
    router.route(CallRinging("c", "1001", AT, "+15551230001", "Alice", "support", "x"))
    router.route(CallAnswered("c", "1001", AT))
    pops = router.route(CallTransferred("c", "1001", "2001", AT))
    assert [row(p) for p in pops] == [
        ("2001", RING, {"transfer_from": "ann"}, CARD),
        ("2001", "call.transferred", {"agent": "cat", "from_agent": "ann"}, False),
        ("1001", "call.transferred", {"agent": "cat", "from_agent": "ann"}, False),
        ("queue:support", "call.transferred", {"agent": "cat", "from_agent": "ann"}, False),
    ]
    ringing = pops[0].message
    assert ringing["caller"] == "+15551230001" and ringing["queue"] == "support"


def test_a_consulted_agent_is_popped_with_who_consults() -> None:
    router = PopRouter(AGENTS.get)
    router.route(CallRinging("c", "1001", AT, "+15551230001", "Alice", "support", "x"))
    router.route(CallAnswered("c", "1001", AT))
    consult = CallRinging("c", "2001", AT, "+15551230001", "Alice", "support", "y", "1001")
    pops = router.route(consult)
    assert [row(p) for p in pops] == [("2001", RING, {"transfer_from": "ann"}, CARD)]


def test_a_retract_for_a_device_never_shown_the_call_says_nothing() -> None:
    router = PopRouter(AGENTS.get)
    assert router.route(CallRetracted("c", "1001", AT, "caller_gone")) == []
    router.route(CallRinging("c", "1001", AT, "+1555", "", None, "x"))
    assert router.route(CallRetracted("c", "1002", AT, "caller_gone")) == []
    assert [row(p)[:2] for p in router.route(CallRetracted("c", "1001", AT, "no_answer"))] == [
        ("1001", "call.retracted")
    ]


def test_a_device_of_nobody_is_still_addressed_but_names_no_agent() -> None:
    router = PopRouter(AGENTS.get)
    router.route(CallRinging("c", "3999", AT, "+1555", "", None, "x"))
    pops = router.route(CallAnswered("c", "3999", AT))
    assert [row(p) for p in pops] == [("3999", "call.answered", {"agent": None}, False)]


def test_the_end_forgets_the_call() -> None:
    router = PopRouter(AGENTS.get)
    router.route(CallRinging("c", "1001", AT, "+1555", "", "support", "x"))
    summary = CallSummary(
        "c",
        "+1555",
        "",
        "",
        "support",
        AT,
        AT,
        AT,
        5,
        3,
        "answered",
        (AgentLeg("1001", AT, 3),),
        None,
    )
    pops = router.route(CallEnded("c", AT, summary))
    assert [row(p)[:2] for p in pops] == [("1001", "call.ended"), ("queue:support", "call.ended")]
    assert pops[0].message["talk_s"] == 3 and pops[0].message["outcome"] == "answered"
    assert router.live_calls() == 0


def test_memory_is_bounded_for_calls_whose_end_never_comes() -> None:
    router = PopRouter(AGENTS.get, max_calls=100)
    for i in range(1000):
        router.route(CallRinging(f"c{i}", "1001", AT, "+1555", "", None, "x"))
    assert router.live_calls() == 100


def test_catch_up_of_a_device_replays_ringing_then_answered() -> None:
    tracker = CallTracker(re.compile(DEFAULT_DEVICE_PATTERN))
    clock = ReplayClock()
    emitted = 0
    for frame in AmiParser().feed((TRACES / "vip-answered" / "ami.log").read_bytes()):
        event = decode_event(frame, clock())
        if event is not None:
            emitted += len(tracker.feed(event))
        if emitted >= 3:  # ringing 2001, ringing 2002, answered 2001
            break
    router = PopRouter(AGENTS.get)
    pops = router.catch_up_device("2001", tracker.catch_up("2001"))
    assert [row(p) for p in pops] == [
        ("2001", RING, {}, CARD),
        ("2001", "call.answered", {"agent": "cat"}, False),
    ]
    follower = router.catch_up_queue("senior", tracker.snapshot())
    assert [row(p) for p in follower] == [
        ("queue:senior", RING, {}, CARD),
        ("queue:senior", "call.answered", {"agent": "cat"}, False),
    ]
    assert router.catch_up_queue("support", tracker.snapshot()) == []
