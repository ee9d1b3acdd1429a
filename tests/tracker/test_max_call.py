"""Calls whose hangups never reach the bridge cannot fill memory: after `[pbx] max_call_s`
`tick` closes them with what is known, `ended_at` marked inferred for reconciliation."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from bridge import pbx_events as n
from bridge.config import DEFAULT_DEVICE_PATTERN
from bridge.models import CallEnded
from bridge.tracker import CallTracker
from bridge.tracker.tracker import MAX_REMEMBERED

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
MAX_CALL_S = 14400


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def never_ending_call(tracker: CallTracker, i: int) -> None:
    """A call answered by one of 500 agents, whose hangups are lost."""
    lid, leg = f"{i}.0", f"{i}.1"
    trunk, agent = f"PJSIP/trunk-{i:08x}", f"PJSIP/{1000 + i % 500}-{i:08x}"
    tracker.feed(n.NewChannel(at(0), lid, lid, trunk, 4, f"+1555{i:07d}", "", "100", "in"))
    tracker.feed(n.DialBegin(at(1), lid, lid, trunk, agent, leg, lid))
    tracker.feed(n.DialEnd(at(2), lid, lid, trunk, agent, leg, lid, "ANSWER"))


def test_a_hundred_thousand_never_ending_calls_leave_no_state() -> None:
    tracker = CallTracker(
        re.compile(DEFAULT_DEVICE_PATTERN), expect_cdr=False, max_call_s=MAX_CALL_S
    )
    for i in range(100_000):
        never_ending_call(tracker, i)
    assert tracker.active_calls == 100_000
    assert tracker.tick(at(MAX_CALL_S)) == []  # not yet: exactly max_call_s old
    ended = tracker.tick(at(MAX_CALL_S + 1))
    assert len(ended) == 100_000 and all(isinstance(e, CallEnded) for e in ended)
    assert tracker.active_calls == 0 and tracker.snapshot() == []
    # Nothing else grows with the number of calls (only bounded memories of recent ends).
    assert tracker._chan_call == {} and tracker._alias == {} and tracker._busy == {}
    assert len(tracker._ended) <= MAX_REMEMBERED and len(tracker._gone) <= MAX_REMEMBERED


def test_a_closed_call_is_recorded_with_what_is_known_and_marked_inferred() -> None:
    tracker = CallTracker(re.compile(DEFAULT_DEVICE_PATTERN), expect_cdr=False, max_call_s=60)
    never_ending_call(tracker, 7)
    (ended,) = tracker.tick(at(61))
    assert isinstance(ended, CallEnded)
    s = ended.summary
    assert (s.call_id, s.caller, s.queue, s.outcome) == (
        "7.0",
        "+15550000007",
        None,
        "answered",
    )
    assert [a.device for a in s.agents] == ["1007"]
    assert s.ended_at == at(61)
    assert "ended_at" in s.inferred  # reconciliation with the PBX's CDRs fixes it later
    # Its Hangups arriving at last change nothing: the call was recorded once.
    assert tracker.feed(n.Hangup(at(70), "7.1", "7.0", "PJSIP/1007-00000007", 16, "")) == []
    assert tracker.feed(n.Hangup(at(70), "7.0", "7.0", "PJSIP/trunk-00000007", 16, "")) == []
    assert tracker.active_calls == 0
