"""The simulator's clock: real time for the demo, fast-forwarded time for tests, and each
call's script time, from which it reports durations."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """The simulated PBX's time, not one of the bridge's clocks (`bridge.clock`).

    It is Asterisk's side of the wire: Unix seconds as the simulated PBX stamps them
    (Uniqueids, CDR times), and it also *sleeps*, so `FastClock` can run a whole scenario
    faster than real time. The bridge under test keeps its own `WallClock` and
    `MonotonicClock`, as it does against a real PBX whose clock it does not share.
    """

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

    Calls keep their relative order (a 2 s talk at speed 100 lasts 20 ms of wall time), so
    tests fast-forward without a fake event loop. Late wake-ups on a loaded machine stretch
    this clock, so a call reports durations from its `Timeline`, never from `now()`
    differences. `start` fixes the simulated epoch for reproducible Uniqueids.
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


class Timeline:
    """One call's script time: what the scenario says happened, not how long it took here.

    It starts at the call's scripted arrival (by default the whole second the PBX clock
    shows when the call begins) and moves only by the scripted waits (`sleep`: ring 0.5 s,
    talk 2 s, ...), in whole milliseconds like Asterisk's timevals, so the figures a call
    reports (TalkTime, BillableSeconds, ...) are the scripted ones however late the event
    loop runs them: on a loaded machine 20 ms of scheduling delay at speed 50 would
    otherwise be one more simulated second. Work the script does not time (the FastAGI
    round trip) takes none of it, as on a real PBX where it takes milliseconds. `catch_up`
    joins another call's time: a caller is put through to an agent no earlier than that
    agent's last call ended in its own script.
    """

    def __init__(self, clock: Clock, start: float | None = None) -> None:
        self._clock = clock
        self._ms = int(clock.now()) * 1000 if start is None else round(start * 1000)

    def now(self) -> float:
        return self._ms / 1000

    async def sleep(self, seconds: float) -> None:
        await self._clock.sleep(seconds)
        self._ms += round(max(0.0, seconds) * 1000)

    def catch_up(self, moment: float) -> None:
        self._ms = max(self._ms, round(moment * 1000))


def _ms(moment: float) -> int:
    return round(moment * 1000)


def queue_seconds(start: float, end: float) -> int:
    """app_queue's HoldTime, RingTime, TalkTime: `time(NULL) - start`, whole seconds of the
    epoch apart (a 1.5 s talk from x.5 to x+2.0 is 2; the recorded concurrent-8 shows it)."""
    return max(0, _ms(end) // 1000 - _ms(start) // 1000)


def cdr_seconds(start: float, end: float) -> int:
    """cdr.c's Duration and BillableSeconds: `ast_tvdiff_ms(end, start) / 1000`, truncated
    (the same 1.5 s talk bills 1)."""
    return max(0, (_ms(end) - _ms(start)) // 1000)
