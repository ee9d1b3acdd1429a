"""Wallboard figures from the tracker's live calls, the PBX's members and today's tallies."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bridge.tracker.tracker import LiveCall, LiveLeg
from bridge.wallboard.stats import Member, Tally, queue_stats

NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def call(cid: str, queue: str, age_s: int, legs: tuple[tuple[str, str], ...] = ()) -> LiveCall:
    started = NOW - timedelta(seconds=age_s)
    answered = started + timedelta(seconds=5) if any(s == "answered" for _, s in legs) else None
    return LiveCall(
        call_id=cid,
        caller="+15551230001",
        caller_name="Alice",
        did="18005550100",
        queue=queue,
        started_at=started,
        answered_at=answered,
        legs=tuple(
            LiveLeg(device=d, channel=f"PJSIP/{d}-1", state=s, since=started)  # type: ignore[arg-type]
            for d, s in legs
        ),
    )


MEMBERS = [
    Member("senior", "2001"),
    Member("senior", "2002", paused=True, reason="lunch"),
    Member("senior", "2003"),
    Member("senior", "2004"),
    Member("support", "1001"),
]


def test_each_member_has_one_state_and_waiting_calls_are_the_unanswered_ones() -> None:
    calls = [
        call("a", "senior", 30, (("2001", "answered"),)),
        call("b", "senior", 12, (("2003", "ringing"),)),
        call("c", "senior", 50),  # nobody free: waits, rings no one
        call("d", "support", 5, (("2004", "answered"),)),  # 2004 is busy on another queue
    ]
    stats = queue_stats(
        "senior",
        calls,
        MEMBERS,
        Tally(answered=3, abandoned=1, within_sla=2),
        now=NOW,
        agent_of=lambda device: {"2001": "alice-agent"}.get(device),
        calls_today={"alice-agent": 4},
    )
    assert stats.waiting == 2
    assert stats.longest_wait_s == 50
    assert dict(stats.agents) == {
        "available": 0,
        "ringing": 1,
        "talking": 2,
        "wrapup": 0,
        "paused": 1,
    }
    assert (stats.answered, stats.abandoned, stats.sla_pct) == (3, 1, 50.0)
    states = {m.device: (m.state, m.reason, m.calls_today) for m in stats.members}
    assert states == {
        "2001": ("talking", "", 4),
        "2002": ("paused", "lunch", 0),
        "2003": ("ringing", "", 0),
        "2004": ("talking", "", 0),
    }
    assert [c["call_id"] for c in stats.calls] == ["c", "a", "b"]
    assert stats.calls[1]["agent"] == "alice-agent"
    assert stats.calls[0]["state"] == "waiting"


def test_without_a_pbx_listing_the_agents_on_the_calls_stand_in() -> None:
    stats = queue_stats(
        "senior", [call("a", "senior", 3, (("2001", "ringing"),))], [], Tally(), now=NOW
    )
    assert dict(stats.agents) == {
        "available": 0,
        "ringing": 1,
        "talking": 0,
        "wrapup": 0,
        "paused": 0,
    }
    assert stats.sla_pct is None


def test_an_idle_queue_reads_zero() -> None:
    stats = queue_stats("support", [], MEMBERS, Tally(), now=NOW)
    assert (stats.waiting, stats.longest_wait_s) == (0, 0)
    assert dict(stats.agents) == {
        "available": 1,
        "ringing": 0,
        "talking": 0,
        "wrapup": 0,
        "paused": 0,
    }


@pytest.mark.parametrize(
    ("ended_s_ago", "live", "paused", "state", "wrapup_s"),
    [
        (None, (), False, "available", None),  # no call ended: no wrap-up
        (0, (), False, "wrapup", 0),  # the call just ended
        (45, (), False, "wrapup", 45),
        (119, (), False, "wrapup", 119),
        (120, (), False, "available", None),  # the [wallboard] wrapup_s limit passed
        (500, (), True, "paused", None),
        (10, (), True, "paused", None),  # a pause (and its reason) says more
        (10, (("2001", "ringing"),), False, "ringing", None),  # a new call: no longer wrapping
        (10, (("2001", "answered"),), False, "talking", None),
        (-5, (), False, "wrapup", 0),  # a clock a little behind the event: never negative
    ],
)
def test_wrap_up_lasts_until_filed_or_the_limit(
    ended_s_ago: int | None,
    live: tuple[tuple[str, str], ...],
    paused: bool,
    state: str,
    wrapup_s: int | None,
) -> None:
    wrapups = {} if ended_s_ago is None else {"2001": NOW - timedelta(seconds=ended_s_ago)}
    calls = [call("n", "senior", 2, live)] if live else []
    stats = queue_stats(
        "senior",
        calls,
        [Member("senior", "2001", paused=paused, reason="lunch")],
        Tally(),
        now=NOW,
        wrapups=wrapups,
        wrapup_s=120,
    )
    [row] = stats.members
    assert (row.state, row.wrapup_s) == (state, wrapup_s)
    assert stats.agents[state] == 1 and sum(stats.agents.values()) == 1
    assert row.as_json()["wrapup_s"] == wrapup_s
    if state == "wrapup":
        assert row.since == wrapups["2001"]


def test_wrap_up_off_when_the_limit_is_zero() -> None:
    wrapups = {"2001": NOW}
    stats = queue_stats("senior", [], [Member("senior", "2001")], Tally(), now=NOW, wrapups=wrapups)
    assert stats.members[0].state == "available"


def test_an_answered_leg_wins_over_ringing_and_the_first_leg_gives_the_time() -> None:
    calls = [
        call("a", "senior", 40, (("2001", "ringing"), ("2003", "ringing"))),
        call("b", "senior", 30, (("2001", "answered"),)),
        call("c", "senior", 20, (("2003", "ringing"), ("2001", "answered"))),
    ]
    stats = queue_stats("senior", calls, MEMBERS, Tally(), now=NOW)
    rows = {row.device: row for row in stats.members}
    assert (rows["2001"].state, rows["2001"].since) == ("talking", calls[1].started_at)
    assert (rows["2003"].state, rows["2003"].since) == ("ringing", calls[0].started_at)
    assert rows["2004"].state == "available"


class CountedLegs(tuple[LiveLeg, ...]):
    """A call's legs that count how often they are walked."""

    walks = 0

    def __iter__(self) -> Iterator[LiveLeg]:
        CountedLegs.walks += 1
        return super().__iter__()


def test_the_calls_are_walked_a_few_times_whatever_the_number_of_members() -> None:
    """A board of 500 members and 300 live calls is asked for on every change: each member's
    state comes from one pass over the calls, not one pass per member."""
    members = [Member("support", str(1000 + i)) for i in range(500)]
    calls = [
        dataclasses.replace(c, legs=CountedLegs(c.legs))
        for n in range(300)
        for c in [call(f"c{n}", "support", n, ((str(1000 + n), "answered"),))]
    ]
    CountedLegs.walks = 0
    stats = queue_stats("support", calls, members, Tally(), now=NOW)
    assert stats.agents["talking"] == 300 and stats.agents["available"] == 200
    assert CountedLegs.walks <= 3 * len(calls)
