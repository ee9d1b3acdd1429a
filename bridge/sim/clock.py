"""The simulator's clock: real time for the demo, fast-forwarded time for tests."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch, as the simulated PBX sees them."""

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FastClock:
    """Simulated time runs `speed` times faster than real time.

    Calls keep their relative order and durations (a 2 s talk at speed 100 lasts 20 ms of
    wall time and reports 2 s in every timestamp), so tests fast-forward without a fake
    event loop. `start` fixes the simulated epoch for reproducible Uniqueids.
    """

    def __init__(self, speed: float = 100.0, start: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._origin = time.monotonic()
        self._start = time.time() if start is None else start

    def now(self) -> float:
        return self._start + (time.monotonic() - self._origin) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)
