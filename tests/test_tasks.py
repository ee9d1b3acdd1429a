from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable

import pytest

from bridge.tasks import Backoff, cancel_and_wait, equal_jitter


async def test_cancels_and_waits_for_every_task() -> None:
    finished: list[str] = []

    async def worker(name: str) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            finished.append(name)

    tasks = [asyncio.create_task(worker(n)) for n in "ab"]
    await asyncio.sleep(0)
    await cancel_and_wait(tasks[0], None, tasks[1])
    assert sorted(finished) == ["a", "b"] and all(t.cancelled() for t in tasks)


async def test_a_task_that_already_failed_reraises() -> None:
    async def broken() -> None:
        raise ValueError("boom")

    task = asyncio.create_task(broken())
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="boom"):
        await cancel_and_wait(task)


async def test_a_cancellation_of_the_caller_is_not_swallowed() -> None:
    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(0.2)  # slow to wind down
            raise

    inner = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait(inner))
    await asyncio.sleep(0.05)
    stopper.cancel()  # the caller itself is cancelled while it waits
    with pytest.raises(asyncio.CancelledError):
        await stopper
    await asyncio.wait([inner])


# --- Backoff -------------------------------------------------------------------------------


def _constant(value: float) -> Callable[[], float]:
    return lambda: value


def test_backoff_doubles_from_initial_up_to_the_cap() -> None:
    top = Backoff(0.5, 5.0, rng=_constant(1.0))  # the top of each range: the ceiling itself
    assert [top.next() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert top.retries == 7
    bottom = Backoff(0.5, 5.0, rng=_constant(0.0))  # the bottom: half of it
    assert [bottom.next() for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.5, 2.5]


def test_backoff_waits_stay_between_half_and_all_of_the_ceiling() -> None:
    backoff = Backoff(0.1, 30.0, rng=random.Random(7).random)
    waits = [backoff.next() for _ in range(200)]
    ceilings = [min(30.0, 0.1 * 2**n) for n in range(200)]
    assert all(c / 2 <= w < c for w, c in zip(waits, ceilings, strict=True))
    assert len({round(w, 6) for w in waits[20:]}) > 100  # jittered, not one fixed cap


def test_the_same_seed_gives_the_same_waits() -> None:
    def waits(seed: int) -> list[float]:
        backoff = Backoff(1.0, 300.0, rng=random.Random(seed).random)
        return [backoff.next() for _ in range(12)]

    assert waits(42) == waits(42)
    assert waits(42) != waits(43)


def test_reset_starts_again_from_initial() -> None:
    backoff = Backoff(0.05, 5.0, rng=_constant(1.0))
    for _ in range(5):
        backoff.next()
    backoff.reset()
    assert backoff.retries == 0
    assert [backoff.next(), backoff.next()] == [0.05, 0.1]


def test_delay_depends_on_the_retry_number_only() -> None:
    """Callers that count attempts themselves (outbox rows, concurrent requests) share one."""
    backoff = Backoff(1.0, 300.0, rng=_constant(1.0))
    assert [backoff.delay(n) for n in (0, 1, 4, 8, 9)] == [1.0, 2.0, 16.0, 256.0, 300.0]
    assert backoff.delay(3) == backoff.delay(3) == 8.0
    assert backoff.retries == 0  # delay() moves nothing


def test_an_initial_wait_above_the_cap_is_the_cap() -> None:
    backoff = Backoff(0.1, 0.05, rng=_constant(1.0))
    assert [backoff.next() for _ in range(3)] == [0.05, 0.05, 0.05]


def test_a_huge_retry_number_is_the_cap_not_an_overflow() -> None:
    assert Backoff(0.5, 30.0).ceiling(10**9) == 30.0
    assert Backoff(0.05, math.inf).ceiling(3) == 0.4  # no cap: the loop stops by itself
    assert Backoff(0.0, 30.0).delay(5) == 0.0  # a zero wait asked for is kept


def test_negative_values_are_refused() -> None:
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(-1.0, 5.0)
    with pytest.raises(ValueError, match="maximum_s"):
        Backoff(1.0, -5.0)
    with pytest.raises(ValueError, match="retry"):
        Backoff(1.0, 5.0).ceiling(-1)


def test_equal_jitter_keeps_half_of_the_wait() -> None:
    assert equal_jitter(4.0, _constant(0.0)) == 2.0
    assert equal_jitter(4.0, _constant(0.5)) == 3.0
    assert equal_jitter(4.0, _constant(1.0)) == 4.0
    draws = random.Random(1)
    assert all(2.0 <= equal_jitter(4.0, draws.random) < 4.0 for _ in range(1000))
