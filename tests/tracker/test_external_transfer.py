"""A transfer made on the agent's SIP phone (REFER with Replaces): the phone's consultation is
a second call with its own Linkedid, which `AttendedTransfer IsExternal: Yes` joins to the
customer's. Synthetic streams (tests/fixtures/synthetic/README.md): one call, both agents."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from bridge import pbx_events as n
from bridge.ami.protocol import AmiParser, Frame
from bridge.ami_replay import replay_frames
from bridge.config import DEFAULT_DEVICE_PATTERN
from bridge.models import CallEnded, CallEvent
from bridge.tracker import CallTracker
from tests.tracker.test_trace_replay import BOB, describe

SYNTHETIC = Path(__file__).parents[1] / "fixtures" / "synthetic"
CALL = "1800000000.0"
CONSULT_CALL = "1800000009.4"


def frames(name: str) -> list[Frame]:
    return AmiParser().feed((SYNTHETIC / name / "ami.log").read_bytes())


def run(fs: list[Frame]) -> list[CallEvent]:
    return replay_frames(fs, CallTracker(re.compile(DEFAULT_DEVICE_PATTERN)))


def refer_on_the_consultation(fs: list[Frame]) -> list[Frame]:
    """The same transfer when the phone sends its REFER on the consultation's dialog: Asterisk
    then names that side first (Orig <-> Second, Transferee <-> TransferTarget)."""
    swap = {
        "OrigTransferer": "SecondTransferer",
        "SecondTransferer": "OrigTransferer",
        "Orig": "Second",
        "Second": "Orig",
        "Transferee": "TransferTarget",
        "TransferTarget": "Transferee",
    }
    out: list[Frame] = []
    for f in fs:
        if f.event != "AttendedTransfer":
            out.append(f)
            continue
        items = []
        for key, value in f.items:
            for old in sorted(swap, key=len, reverse=True):
                if key.startswith(old) and key not in {"DestType", "DestBridgeUniqueid"}:
                    key = swap[old] + key[len(old) :]
                    break
            items.append((key, value))
        out.append(Frame(items))
    return out


TRANSFERRED = [
    ("ringing", CALL, "1001", *BOB, "support"),
    ("answered", CALL, "1001"),
    # The consultation rings 2001 with the customer's call and card, 1001 consulting.
    ("ringing", CALL, "2001", *BOB, "support", ("from", "1001")),
    ("transferred", CALL, "1001", "2001"),
    ("answered", CALL, "2001"),
    # 1001: the queue's TalkTime; 2001: the customer's Cdr toward it, not the consultation's.
    (
        "ended",
        CALL,
        "answered",
        "support",
        "+15551230002",
        20,
        (("1001", 9), ("2001", 11)),
        f"{CALL}.wav",
    ),
]


def test_phone_transfer_is_one_call_with_both_agents() -> None:
    events = run(frames("external-attended-transfer"))
    assert describe(events) == TRANSFERRED
    (ended,) = [e for e in events if isinstance(e, CallEnded)]
    assert CONSULT_CALL in ended.summary.uniqueids  # the consultation's channels are the call's
    assert ended.summary.inferred == ()


def test_refer_on_either_dialog_gives_the_same_record() -> None:
    events = run(refer_on_the_consultation(frames("external-attended-transfer")))
    assert describe(events) == TRANSFERRED


def test_failed_phone_transfer_keeps_the_first_agent_and_closes_the_consultation() -> None:
    assert describe(run(frames("external-attended-transfer-failed"))) == [
        ("ringing", CALL, "1001", *BOB, "support"),
        ("answered", CALL, "1001"),
        ("ringing", CALL, "2001", *BOB, "support", ("from", "1001")),
        ("retracted", CALL, "2001", "caller_gone"),  # the consultation ended, no transfer
        ("ended", CALL, "answered", "support", "+15551230002", 20, (("1001", 20),), f"{CALL}.wav"),
    ]


def test_consultation_seen_late_is_folded_in_at_the_transfer() -> None:
    """The consultation's first events were lost (the tracker could not tell it was one): the
    transfer itself joins the two calls, and the consultation call leaves no record."""
    fs = [
        f
        for f in frames("external-attended-transfer")
        if not (f.get("Uniqueid") == CONSULT_CALL and f.event in {"Newchannel", "DialBegin"})
    ]
    got = describe(run(fs))
    assert got[:2] == TRANSFERRED[:2]
    assert got[2:] == [
        # Learnt from its DialEnd: a call of its own, as far as the tracker can tell ...
        ("ringing", CONSULT_CALL, "2001", "", "", None),
        ("answered", CONSULT_CALL, "2001"),
        # ... until the transfer joins it to the customer's call.
        ("retracted", CONSULT_CALL, "2001", "transferred"),
        *TRANSFERRED[2:],
    ]


def test_a_trunk_reached_by_an_outbound_call_is_not_an_agent_consulting() -> None:
    """An outbound call answered on the trunk does not make the next inbound call from the
    trunk (its first channel `PJSIP/trunk-…` too) a consultation of the outbound one."""
    t0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    tracker = CallTracker(re.compile(DEFAULT_DEVICE_PATTERN), expect_cdr=False)
    phone, trunk = "PJSIP/1001-00000001", "PJSIP/trunk-00000002"
    tracker.feed(n.NewChannel(t0, "5.0", "5.0", phone, 6, "1001", "", "+15550001", "out"))
    tracker.feed(n.DialBegin(t0, "5.0", "5.0", phone, trunk, "5.1", "5.0"))
    tracker.feed(n.DialEnd(t0, "5.0", "5.0", phone, trunk, "5.1", "5.0", "ANSWER"))
    inbound = "PJSIP/trunk-00000003"
    tracker.feed(n.NewChannel(t0, "6.0", "6.0", inbound, 4, "+15551230002", "Bob", "100", "in"))
    assert {live.call_id for live in tracker.snapshot()} == {"5.0", "6.0"}
