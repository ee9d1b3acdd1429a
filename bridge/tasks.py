"""Background-task helpers: stopping tasks, and the one retry backoff."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

__all__ = ["Backoff", "Rng", "cancel_and_wait", "equal_jitter"]

Rng = Callable[[], float]
"""A uniform draw from [0, 1), like `random.random`; tests pass `random.Random(seed).random`
or a constant."""

# 2.0 ** 1000 is still a finite float; past it `**` raises OverflowError. No cap is that far.
_MAX_DOUBLINGS = 1000


def equal_jitter(seconds: float, rng: Rng = random.random) -> float:
    """A wait drawn from [seconds / 2, seconds): half of it certain, half random."""
    return seconds * (0.5 + 0.5 * rng())


class Backoff:
    """Exponential backoff with equal jitter, for every loop that retries something.

    Before retry `n` (0 for the first) the ceiling is `min(maximum_s, initial_s * 2**n)`,
    and the wait is drawn from [ceiling / 2, ceiling) (`equal_jitter`).

    Why equal jitter and not full jitter ([0, ceiling)): our retries mostly wait for
    something that is down (the database restarting, the PBX link, the CRM answering 503),
    not for a resource many clients compete for. Full jitter draws near-zero waits, so a
    bridge could knock again at once, several times in a row, on a server still coming up;
    equal jitter keeps half of every wait certain, so the backoff really backs off, and still
    spreads bridges restarted together over half the ceiling. For clients contending on one
    resource, full jitter finishes sooner with less work ("Exponential Backoff And Jitter",
    AWS Architecture Blog, 2015); that is not our case.

    Two ways to use it:
    - a loop that owns its retries: `next()` before each wait, `reset()` after a success;
    - a caller that counts attempts itself (a row's `attempts` column, concurrent requests
      sharing one object): `delay(n)`, which keeps no state.

    `maximum_s` may be `math.inf` for a loop that stops after a few retries by itself; an
    `initial_s` above `maximum_s` gives `maximum_s` every time, and 0 means no wait at all.
    """

    def __init__(self, initial_s: float, maximum_s: float, *, rng: Rng = random.random) -> None:
        if not initial_s >= 0:
            raise ValueError(f"initial_s must be 0 or more, not {initial_s!r}")
        if not maximum_s >= 0:
            raise ValueError(f"maximum_s must be 0 or more, not {maximum_s!r}")
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self._rng = rng
        self._retries = 0

    @property
    def retries(self) -> int:
        """How many waits `next()` has handed out since the last `reset()`."""
        return self._retries

    def ceiling(self, retry: int) -> float:
        """The longest wait before retry number `retry` (from 0), before jitter."""
        if retry < 0:
            raise ValueError(f"retry must be 0 or more, not {retry}")
        return min(self.maximum_s, self.initial_s * 2.0 ** min(retry, _MAX_DOUBLINGS))

    def delay(self, retry: int) -> float:
        """A jittered wait before retry number `retry`: in [ceiling / 2, ceiling)."""
        return equal_jitter(self.ceiling(retry), self._rng)

    def next(self) -> float:
        """The wait before the next retry; each call doubles the ceiling until the cap."""
        wait = self.delay(self._retries)
        self._retries += 1
        return wait

    def reset(self) -> None:
        """It worked: the next wait starts from `initial_s` again."""
        self._retries = 0


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel the tasks and return once every one has finished.

    Unlike `task.cancel()` then `await task` under `suppress(CancelledError)`, this never
    swallows a cancellation of the *caller*: waiting with `asyncio.wait` does not raise the
    tasks' CancelledError, so one that reaches us is ours and propagates. A task that had
    already failed with another exception re-raises it here, as awaiting it would.
    """
    live = [task for task in tasks if task is not None]
    for task in live:
        task.cancel()
    if live:
        await asyncio.wait(live)
    for task in live:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
