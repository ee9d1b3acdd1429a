"""The bridge's clock types and their default."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bridge.ami_replay import ReplayClock
from bridge.clock import WallClock, utc_now


def test_utc_now_is_the_systems_time_in_utc() -> None:
    before = datetime.now(UTC)
    now = utc_now()
    after = datetime.now(UTC)
    assert now.tzinfo is UTC and before <= now <= after


def test_a_replay_clock_is_a_wall_clock_that_steps_per_call() -> None:
    clock: WallClock = ReplayClock()
    first, second = clock(), clock()
    assert first == datetime(2026, 1, 1, tzinfo=UTC)
    assert second - first == timedelta(milliseconds=10)
