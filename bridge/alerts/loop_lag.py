"""How late the event loop runs (component `event_loop`).

Every FastAGI round trip, pop and AMI event waits behind whatever holds the loop, and on a
starved machine behind the CPU: a route is ten round trips, so 30 ms of lateness is a
caller's 300 ms budget. A probe asks to be woken every `interval_s` and records how late it
woke in `crm_bridge_event_loop_lag_seconds`; `/healthz` shows the worst of the last minute
(`detail.lag_max_ms`). It never degrades the bridge's health: the figure is for people.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from prometheus_client import Histogram

from bridge.clock import MonotonicClock, Sleep
from bridge.component import Health
from bridge.tasks import cancel_and_wait

__all__ = ["LAG", "LoopLag"]

LAG = Histogram(
    "crm_bridge_event_loop_lag_seconds",
    "How late the event loop woke a timer (every FastAGI round trip waits as long)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


class LoopLag:
    name = "event_loop"

    def __init__(
        self,
        *,
        interval_s: float = 0.25,
        window_s: float = 60.0,
        clock: MonotonicClock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._interval = interval_s
        self._clock = clock
        self._sleep = sleep
        self._recent: deque[float] = deque(maxlen=max(1, round(window_s / interval_s)))
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-loop-lag")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def probe(self) -> float:
        """One wake-up; returns (and records) how many seconds late it came."""
        due = self._clock() + self._interval
        await self._sleep(self._interval)
        lag = max(0.0, self._clock() - due)
        LAG.observe(lag)
        self._recent.append(lag)
        return lag

    async def _run(self) -> None:
        while True:
            await self.probe()

    def lags(self) -> list[float]:
        """The lateness of the wake-ups in the window, in seconds, oldest first."""
        return list(self._recent)

    def health(self) -> Health:
        worst = max(self._recent, default=0.0)
        last = self._recent[-1] if self._recent else 0.0
        return Health(
            "up",
            required=False,
            detail={"lag_max_ms": round(worst * 1000, 1), "lag_last_ms": round(last * 1000, 1)},
        )
