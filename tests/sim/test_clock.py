"""A call's script time, and the whole seconds Asterisk reports from it."""

from __future__ import annotations

import pytest

from bridge.sim.clock import FastClock, Timeline, cdr_seconds, queue_seconds
from tests.sim.conftest import LateClock

T = 1_795_464_251.0  # a whole second of the epoch, as a call's timeline starts on one


@pytest.mark.parametrize(
    ("start", "end", "queue", "cdr"),
    [
        (T, T + 2.0, 2, 2),
        (T + 0.5, T + 2.5, 2, 2),  # regular-answered: ring 0.5 s, talk 2 s
        (T + 0.5, T + 2.0, 2, 1),  # a 1.5 s talk: TalkTime 2, BillableSeconds 1 (concurrent-8)
        (T, T + 0.5, 0, 0),  # RingTime of a 0.5 s ring
        (T + 1.3, T + 5.3, 4, 4),
        (T + 0.3, T + 1.3, 1, 1),  # blind-transfer: ring 0.3 s, talk 1 s
        (T + 0.999, T + 1.001, 1, 0),
        (T + 2.0, T + 1.0, 0, 0),  # never negative
    ],
)
def test_asterisk_counts_whole_seconds_its_own_ways(
    start: float, end: float, queue: int, cdr: int
) -> None:
    assert (queue_seconds(start, end), cdr_seconds(start, end)) == (queue, cdr)


def test_float_sums_do_not_lose_a_second() -> None:
    # 0.3 + 1.0 + 0.3 + 4.0 on an epoch float is not exactly 5.6; milliseconds are.
    start = T + 0.3 + 1.0 + 0.3
    assert cdr_seconds(start, start + 4.0) == 4
    assert queue_seconds(T + 0.1 + 0.2, T + 0.3 + 4.0) == 4


async def test_a_timeline_starts_on_a_whole_second_and_moves_only_by_the_script() -> None:
    clock = LateClock(late_s=0.7, speed=1000)
    timeline = Timeline(clock)
    start = timeline.now()
    assert start == int(start) and start <= clock.now()
    await timeline.sleep(0.5)
    await timeline.sleep(2.0)
    assert timeline.now() - start == 2.5
    assert clock.now() - start >= 2.5 + 2 * 0.7  # the clock itself ran late


async def test_catching_up_never_goes_back() -> None:
    timeline = Timeline(FastClock(speed=1.0, start=T + 0.25))
    assert timeline.now() == T
    timeline.catch_up(T + 3.5)
    assert timeline.now() == T + 3.5
    timeline.catch_up(T + 1.0)
    assert timeline.now() == T + 3.5
    await timeline.sleep(-1.0)
    assert timeline.now() == T + 3.5
