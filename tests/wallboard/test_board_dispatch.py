"""What one call event costs the board: an event that does not name its queue (an answer,
a retraction) pushes every queue a page follows, and lists no live call when none is
followed; the tracker's snapshot is O(live calls), a thousand at peak, on every event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bridge.models import CallAnswered, CallRinging
from bridge.tracker.calls import LiveCall, LiveLeg
from bridge.wallboard.board import WallBoard

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


class CountedLive:
    """Live calls in `senior`, counting how often the board lists them."""

    def __init__(self) -> None:
        self.listed = 0
        self.calls = [
            LiveCall(
                "call-1",
                "+15551230001",
                "",
                "100",
                "senior",
                T0,
                None,
                (LiveLeg("PJSIP-2001", "PJSIP/2001-00000001", "ringing", T0),),
            )
        ]

    def snapshot(self) -> list[LiveCall]:
        self.listed += 1
        return list(self.calls)


def board_following(followed: set[str]) -> tuple[WallBoard, CountedLive, list[str]]:
    live = CountedLive()
    board = WallBoard(live, clock=lambda: T0, queues=["support"])
    pushed: list[str] = []
    board.on_stats(lambda queue, message: pushed.append(queue), followed.__contains__)
    return board, live, pushed


def ringing() -> CallRinging:
    return CallRinging(
        "call-1", "PJSIP-2001", T0, "+15551230001", "", "senior", "PJSIP/2001-00000001"
    )


def test_an_event_without_its_queue_lists_no_live_call_when_nobody_follows() -> None:
    board, live, pushed = board_following(set())
    board.dispatch([ringing()])
    board.dispatch([CallAnswered("call-1", "PJSIP-2001", T0)] * 50)
    assert live.listed == 0 and pushed == []


def test_an_event_without_its_queue_pushes_the_followed_queue_of_its_call() -> None:
    board, _, pushed = board_following({"senior"})
    board.dispatch([ringing()])
    assert pushed == ["senior"]
    board.dispatch([CallAnswered("call-1", "PJSIP-2001", T0)])
    assert pushed == ["senior", "senior"]


def test_a_queue_named_only_by_the_configuration_is_pushed_when_followed() -> None:
    board, _, pushed = board_following({"support"})
    board.dispatch([CallAnswered("call-1", "PJSIP-2001", T0)])
    assert pushed == ["support"]


def test_a_queue_seen_yesterday_is_forgotten_at_midnight_unless_a_call_is_still_in_it() -> None:
    now = [T0]
    live = CountedLive()
    board = WallBoard(live, clock=lambda: now[0])
    pushed: list[Any] = []
    board.on_stats(lambda queue, message: pushed.append(queue), lambda queue: True)
    board.dispatch([ringing()])
    board.dispatch([CallRinging("call-2", "PJSIP-2002", T0, "+1555", "", "billing", "x")])
    live.calls = live.calls[:1]  # call-2 ended with no CallEnded seen: only `senior` is live
    now[0] = datetime(2026, 5, 2, 0, 0, 1, tzinfo=UTC)
    pushed.clear()
    board.dispatch([CallAnswered("call-1", "PJSIP-2001", now[0])])
    assert pushed == ["senior"]
