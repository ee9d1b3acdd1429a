"""Tracker behaviour beyond the recordings: held ends and `tick`, resync after a reconnect,
catch-up for a reconnecting client, no-answer, attended transfer, late and hostile events."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from bridge import pbx_events as n
from bridge.config import DEFAULT_DEVICE_PATTERN
from bridge.models import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallRetracted,
    CallRinging,
    CallTransferred,
)
from bridge.tracker import CallTracker

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TRUNK = "PJSIP/trunk-00000001"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make(**kw: object) -> CallTracker:
    return CallTracker(re.compile(DEFAULT_DEVICE_PATTERN), **kw)  # type: ignore[arg-type]


def kinds(events: list[CallEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


class Pbx:
    """Builds the normalised events of a PJSIP call with Linkedid `1.0`."""

    def __init__(self, tracker: CallTracker, linkedid: str = "1.0") -> None:
        self.t = tracker
        self.lid = linkedid
        self.out: list[CallEvent] = []

    def feed(self, *events: n.PbxEvent) -> list[CallEvent]:
        got: list[CallEvent] = []
        for e in events:
            got.extend(self.t.feed(e))
        self.out.extend(got)
        return got

    def inbound(self, s: float, caller: str = "+15551230002", name: str = "Bob") -> None:
        self.feed(
            n.NewChannel(at(s), self.lid, self.lid, TRUNK, 4, caller, name, "18005550100", "in"),
            n.QueueCallerJoin(at(s), self.lid, self.lid, TRUNK, "support", 1),
        )

    def ring(self, s: float, uid: str, ext: str, queue: bool = True) -> list[CallEvent]:
        chan = f"PJSIP/{ext}-{uid}"
        events: list[n.PbxEvent] = [n.NewChannel(at(s), uid, self.lid, chan, 0, "", "", ext, "x")]
        if queue:
            events.append(
                n.AgentCalled(
                    at(s), self.lid, self.lid, TRUNK, chan, uid, "support", f"PJSIP/{ext}", ""
                )
            )
        events.append(n.DialBegin(at(s), self.lid, self.lid, TRUNK, chan, uid, self.lid))
        return self.feed(*events)

    def dial_end(self, s: float, uid: str, ext: str, status: str) -> list[CallEvent]:
        chan = f"PJSIP/{ext}-{uid}"
        return self.feed(n.DialEnd(at(s), self.lid, self.lid, TRUNK, chan, uid, self.lid, status))

    def hangup(self, s: float, uid: str, chan: str, cause: int = 16) -> list[CallEvent]:
        return self.feed(n.Hangup(at(s), uid, self.lid, chan, cause, ""))

    def cdr(self, s: float, dest: str, billable: int) -> list[CallEvent]:
        return self.feed(
            n.CdrRecord(at(s), self.lid, TRUNK, dest, "", "", "ANSWERED", billable, 0, "", "", "")
        )


def test_ringing_answer_and_end_with_timestamps_when_no_cdr_flows() -> None:
    pbx = Pbx(make(expect_cdr=False))
    pbx.inbound(0)
    (ringing,) = pbx.ring(1, "1.1", "1001")
    assert isinstance(ringing, CallRinging)
    assert (ringing.device, ringing.caller, ringing.queue) == ("1001", "+15551230002", "support")
    assert kinds(pbx.dial_end(2, "1.1", "1001", "ANSWER")) == ["CallAnswered"]
    pbx.hangup(12, "1.1", "PJSIP/1001-1.1")
    (ended,) = pbx.hangup(12.5, "1.0", TRUNK)
    assert isinstance(ended, CallEnded)
    s = ended.summary
    assert (s.duration_s, s.talk_s, s.outcome, s.inferred) == (12, 10, "answered", ())
    assert s.started_at == at(0) and s.answered_at == at(2) and s.ended_at == at(12.5)


def test_end_waits_for_cdr_and_uses_billable_seconds() -> None:
    pbx = Pbx(make(expect_cdr=True))
    pbx.inbound(0)
    pbx.ring(1, "1.1", "1001", queue=False)
    pbx.dial_end(2, "1.1", "1001", "ANSWER")
    pbx.hangup(12, "1.1", "PJSIP/1001-1.1")
    assert pbx.hangup(12, "1.0", TRUNK) == []  # held: the caller's Cdr comes after its Hangup
    assert pbx.t.snapshot() == []  # a held call is no longer live
    (ended,) = pbx.cdr(12.1, "PJSIP/1001-1.1", 9)
    assert isinstance(ended, CallEnded) and ended.summary.talk_s == 9
    assert pbx.t.tick(at(100)) == []  # ended once


def test_tick_releases_a_call_whose_cdr_never_comes() -> None:
    pbx = Pbx(make(expect_cdr=True, cdr_grace_s=3))
    pbx.inbound(0)
    pbx.ring(1, "1.1", "1001", queue=False)
    pbx.dial_end(2, "1.1", "1001", "ANSWER")
    pbx.hangup(7, "1.1", "PJSIP/1001-1.1")
    assert pbx.hangup(7, "1.0", TRUNK) == []
    assert pbx.t.tick(at(9)) == []
    (ended,) = pbx.t.tick(at(10))
    assert isinstance(ended, CallEnded)
    assert ended.at == at(7) and ended.summary.talk_s == 5
    assert ended.summary.inferred == ("talk_s",)


def test_tracker_learns_that_no_cdrs_come() -> None:
    tracker = make(cdr_grace_s=2)
    first = Pbx(tracker, "1.0")
    first.inbound(0)
    first.ring(1, "1.1", "1001", queue=False)
    first.dial_end(2, "1.1", "1001", "ANSWER")
    first.hangup(5, "1.1", "PJSIP/1001-1.1")
    assert first.hangup(5, "1.0", TRUNK) == []
    assert kinds(tracker.tick(at(8))) == ["CallEnded"]
    second = Pbx(tracker, "2.0")
    second.inbound(10)
    second.ring(11, "2.1", "1002", queue=False)
    second.dial_end(12, "2.1", "1002", "ANSWER")
    second.hangup(15, "2.1", "PJSIP/1002-2.1")
    assert kinds(second.hangup(15, "2.0", TRUNK)) == ["CallEnded"]  # no more waiting


def test_queue_talk_time_beats_a_cdr_that_billed_the_wait() -> None:
    pbx = Pbx(make(expect_cdr=True))
    pbx.inbound(0)
    pbx.ring(30, "1.1", "1001")
    pbx.dial_end(31, "1.1", "1001", "ANSWER")
    pbx.feed(
        n.AgentComplete(
            at(33), "1.0", "1.0", TRUNK, "", "", "support", "PJSIP/1001", 2, "agent"
        )  # no DestChannel: matched through the interface
    )
    pbx.hangup(33, "1.1", "PJSIP/1001-1.1")
    (ended,) = pbx.hangup(33, "1.0", TRUNK)
    assert isinstance(ended, CallEnded) and ended.summary.talk_s == 2


def test_rrmemory_no_answer_then_next_agent() -> None:
    pbx = Pbx(make(expect_cdr=False))
    pbx.inbound(0)
    pbx.ring(1, "1.1", "1001")
    got = pbx.feed(
        n.AgentRingNoAnswer(at(9), "1.0", "1.0", TRUNK, "PJSIP/1001-1.1", "1.1", "support", "")
    )
    assert [(type(e).__name__, getattr(e, "reason", None)) for e in got] == [
        ("CallRetracted", "no_answer")
    ]
    assert pbx.dial_end(9, "1.1", "1001", "NOANSWER") == []  # not twice
    pbx.hangup(9, "1.1", "PJSIP/1001-1.1", cause=19)
    pbx.ring(10, "1.2", "1002")
    pbx.dial_end(11, "1.2", "1002", "ANSWER")
    pbx.hangup(20, "1.2", "PJSIP/1002-1.2")
    (ended,) = pbx.hangup(20, "1.0", TRUNK)
    assert isinstance(ended, CallEnded)
    assert [a.device for a in ended.summary.agents] == ["1002"]


def test_caller_hangs_up_while_ringing_is_abandoned() -> None:
    pbx = Pbx(make(expect_cdr=False))
    pbx.inbound(0)
    pbx.ring(1, "1.1", "1001")
    got = pbx.hangup(3, "1.0", TRUNK, cause=0)
    assert [(type(e).__name__, getattr(e, "reason", None)) for e in got] == [
        ("CallRetracted", "caller_gone")
    ]
    (ended,) = pbx.hangup(3.1, "1.1", "PJSIP/1001-1.1", cause=0)
    assert isinstance(ended, CallEnded) and ended.summary.outcome == "abandoned"


def test_call_that_never_reaches_an_agent_is_unanswered() -> None:
    tracker = make(expect_cdr=False)
    assert tracker.feed(n.NewChannel(at(0), "9.0", "9.0", TRUNK, 4, "+1", "", "100", "in")) == []
    (ended,) = tracker.feed(n.Hangup(at(1), "9.0", "9.0", TRUNK, 16, ""))
    assert isinstance(ended, CallEnded) and ended.summary.outcome == "unanswered"


def test_late_events_do_not_resurrect_an_ended_call() -> None:
    pbx = Pbx(make(expect_cdr=False))
    pbx.inbound(0)
    pbx.hangup(1, "1.0", TRUNK)
    assert kinds(pbx.out) == ["CallEnded"]
    assert pbx.hangup(2, "1.0", TRUNK) == []
    pbx.inbound(3)  # a replayed Newchannel of the same channel
    assert pbx.t.active_calls == 0
    assert pbx.cdr(4, "PJSIP/1001-1.1", 3) == []


def test_catch_up_for_a_reconnecting_client() -> None:
    pbx = Pbx(make(expect_cdr=False))
    pbx.inbound(0)
    pbx.ring(1, "1.1", "2001")
    pbx.ring(1, "1.2", "2002")
    pbx.dial_end(2, "1.1", "2001", "ANSWER")
    assert [type(e).__name__ for e in pbx.t.catch_up("2001")] == ["CallRinging", "CallAnswered"]
    assert [type(e).__name__ for e in pbx.t.catch_up("2002")] == ["CallRinging"]
    assert pbx.t.catch_up("9999") == []
    (live,) = pbx.t.calls_for_device("2001")
    assert live.call_id == "1.0" and live.caller == "+15551230002"
    assert {(leg.device, leg.state) for leg in live.legs} == {
        ("2001", "answered"),
        ("2002", "ringing"),
    }
    pbx.dial_end(2, "1.2", "2002", "CANCEL")
    assert pbx.t.calls_for_device("2002") == []


def listed(uid: str, lid: str, chan: str, state: int, app: str, dur: int = 0) -> n.ChannelListed:
    return n.ChannelListed(
        at(50), uid, lid, chan, state, "+1555", "Bob", "1", "c", app, "", dur, ""
    )


def test_resync_ends_calls_that_vanished_and_keeps_live_ones() -> None:
    tracker = make(expect_cdr=False)
    gone = Pbx(tracker, "1.0")
    gone.inbound(0)
    gone.ring(1, "1.1", "1001")
    gone.dial_end(2, "1.1", "1001", "ANSWER")
    kept = Pbx(tracker, "2.0")
    kept.feed(n.NewChannel(at(3), "2.0", "2.0", "PJSIP/trunk-2", 4, "+1666", "Eve", "1", "in"))
    kept.feed(
        n.AgentCalled(at(4), "2.0", "2.0", "PJSIP/trunk-2", "PJSIP/1002-2.1", "2.1", "q", "", "")
    )
    channels = [
        listed("2.0", "2.0", "PJSIP/trunk-2", 6, "Queue"),
        listed("2.1", "2.0", "PJSIP/1002-2.1", 6, "AppQueue"),  # answered while we were away
    ]
    got = tracker.resync(channels, [], now=at(60))
    assert [(type(e).__name__, e.call_id) for e in got] == [
        ("CallEnded", "1.0"),
        ("CallAnswered", "2.0"),
    ]
    ended = got[0]
    assert isinstance(ended, CallEnded)
    assert ended.summary.ended_at == at(60)
    assert set(ended.summary.inferred) >= {"ended_at", "talk_s"}
    assert ended.summary.agents[0].talk_s == 58
    assert tracker.active_calls == 1
    # The kept call ends normally, once.
    kept.hangup(70, "2.1", "PJSIP/1002-2.1")
    (final,) = kept.hangup(70, "2.0", "PJSIP/trunk-2")
    assert isinstance(final, CallEnded) and final.summary.inferred == ("answered_at",)
    assert tracker.resync([], [], now=at(80)) == []


def test_resync_adopts_calls_it_never_saw() -> None:
    tracker = make(expect_cdr=False)
    got = tracker.resync(
        [
            listed("5.0", "5.0", "PJSIP/trunk-5", 6, "Queue", dur=30),
            listed("5.1", "5.0", "PJSIP/2001-5.1", 5, "AppQueue"),
            listed("5.2", "5.0", "PJSIP/2002-5.2", 6, "AppDial"),
            listed("6.0", "6.0", "PJSIP/trunk-6", 6, "Queue"),
        ],
        [n.QueueEntryListed(at(50), "senior", "5.0", "PJSIP/trunk-5", 1, 30, "+1555", "Bob", "")],
        now=at(60),
    )
    assert [(type(e).__name__, getattr(e, "device", None)) for e in got] == [
        ("CallRinging", "2001"),
        ("CallRinging", "2002"),
        ("CallAnswered", "2002"),
    ]
    ringing = got[0]
    assert isinstance(ringing, CallRinging) and ringing.caller == "+1555"
    (live,) = tracker.calls_for_device("2001")
    assert live.started_at == at(30) and live.queue == "senior"
    assert tracker.active_calls == 2


def test_consultation_from_the_phone_joins_the_call_and_completes_on_transfer() -> None:
    tracker = make(expect_cdr=False)
    pbx = Pbx(tracker)
    pbx.inbound(0)
    pbx.ring(1, "1.1", "1001")
    pbx.dial_end(2, "1.1", "1001", "ANSWER")
    # 1001 consults 2001 on a new call (Linkedid 3.0), then completes the transfer.
    consult = Pbx(tracker, "3.0")
    consult.feed(n.NewChannel(at(5), "3.0", "3.0", "PJSIP/1001-3.0", 6, "1001", "", "2001", "x"))
    consult.feed(n.NewChannel(at(5), "3.1", "3.0", "PJSIP/2001-3.1", 0, "", "", "2001", "x"))
    (ringing,) = consult.feed(
        n.DialBegin(at(5), "3.0", "3.0", "PJSIP/1001-3.0", "PJSIP/2001-3.1", "3.1", "3.0")
    )
    # 2001 is popped with the customer's call and card, consulted by 1001.
    assert isinstance(ringing, CallRinging)
    assert (ringing.call_id, ringing.device, ringing.caller, ringing.transfer_from) == (
        "1.0",
        "2001",
        "+15551230002",
        "1001",
    )
    # Picking up a consultation is not answering the customer.
    assert (
        consult.feed(
            n.DialEnd(
                at(6), "3.0", "3.0", "PJSIP/1001-3.0", "PJSIP/2001-3.1", "3.1", "3.0", "ANSWER"
            )
        )
        == []
    )
    got = pbx.feed(
        n.AttendedTransfer(
            at(9),
            True,
            "PJSIP/1001-1.1",
            "1.1",
            "1.0",
            "PJSIP/1001-3.0",
            "3.0",
            "3.0",
            TRUNK,
            "1.0",
            "1.0",
            "PJSIP/2001-3.1",
            "3.1",
            "3.0",
            "Link",
        )
    )
    assert [type(e).__name__ for e in got] == ["CallTransferred", "CallAnswered"]
    moved = got[0]
    assert isinstance(moved, CallTransferred)
    assert (moved.call_id, moved.from_device, moved.to_device) == ("1.0", "1001", "2001")
    pbx.hangup(10, "1.1", "PJSIP/1001-1.1")
    assert consult.hangup(10, "3.0", "PJSIP/1001-3.0") == []  # no record of its own
    pbx.feed(n.Hangup(at(20), "3.1", "3.0", "PJSIP/2001-3.1", 16, ""))
    (ended,) = pbx.hangup(20, "1.0", TRUNK)
    assert isinstance(ended, CallEnded)
    assert [(a.device, a.talk_s) for a in ended.summary.agents] == [("1001", 7), ("2001", 11)]


def test_dials_to_non_devices_and_originates_are_not_agents() -> None:
    tracker = CallTracker(re.compile(r"^PJSIP/(?P<ext>\d{4})-"))
    pbx = Pbx(tracker)
    pbx.inbound(0)
    assert pbx.feed(n.DialBegin(at(1), "", "", "", "PJSIP/1001-9", "9", "9")) == []  # originate
    assert pbx.feed(n.DialBegin(at(1), "1.0", "1.0", TRUNK, "IAX2/remote-1", "1.7", "1.0")) == []
    got = pbx.feed(n.DialBegin(at(1), "1.0", "1.0", TRUNK, "PJSIP/1001-0001", "1.8", "1.0"))
    assert [(type(e).__name__, getattr(e, "device", "")) for e in got] == [("CallRinging", "1001")]


def test_duplicate_dial_end_and_answers_emit_once() -> None:
    pbx = Pbx(make(expect_cdr=False))
    pbx.inbound(0)
    pbx.ring(1, "1.1", "2001")
    pbx.ring(1, "1.2", "2002")
    pbx.dial_end(2, "1.1", "2001", "ANSWER")
    pbx.feed(n.AgentConnect(at(2), "1.0", "1.0", TRUNK, "PJSIP/2001-1.1", "1.1", "q", "", 1))
    pbx.dial_end(2, "1.2", "2002", "CANCEL")
    pbx.dial_end(2, "1.2", "2002", "CANCEL")
    pbx.hangup(2, "1.2", "PJSIP/2002-1.2", cause=26)
    assert kinds(pbx.out) == ["CallRinging", "CallRinging", "CallAnswered", "CallRetracted"]
    retracted = pbx.out[-1]
    assert isinstance(retracted, CallRetracted) and retracted.reason == "answered_elsewhere"
    assert isinstance(pbx.out[2], CallAnswered)


def test_a_call_whose_hangups_were_lost_is_ended_after_max_age() -> None:
    pbx = Pbx(make(expect_cdr=False, max_call_s=3600))
    pbx.inbound(0)
    pbx.ring(1, "1.1", "1001")
    pbx.dial_end(2, "1.1", "1001", "ANSWER")
    assert pbx.t.tick(at(3000)) == []
    (ended,) = pbx.t.tick(at(3601))
    assert isinstance(ended, CallEnded)
    assert ended.summary.outcome == "answered"
    assert "ended_at" in ended.summary.inferred
    assert pbx.t.active_calls == 0
