"""The bridge's clocks: what "now" means, defined once, so every component can be handed a
fake one in tests.

Two kinds, because they answer different questions:

- `WallClock` says *when*: an aware UTC `datetime`, for what is stored, shown or compared
  with other machines (call records, lags against `ended_at`, "today" on the wallboard).
  The default is `utc_now`; tests pass a fixed or stepping one.
- `MonotonicClock` says *how long*: seconds from an arbitrary origin that never go back,
  for durations, timeouts and rate windows (`time.monotonic`, or `time.perf_counter` when
  it times something short). Its values mean nothing outside the process.

- `UnixClock` says *when* in Unix seconds, for times several bridge instances compare
  through the database (the shared dial slots); the instances' clocks are NTP-synchronised.

Simulated time is a third thing and stays apart: the PBX simulator's `bridge.sim.clock.Clock`
also *sleeps* (fast-forwarded by `FastClock`) and counts Unix seconds as the simulated PBX
sees them, and `bridge.ami_replay.ReplayClock` steps a fixed amount per replayed frame.
A `ReplayClock` is nevertheless a valid `WallClock` (it returns an aware UTC datetime).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

__all__ = ["MonotonicClock", "Sleep", "UnixClock", "WallClock", "utc_now"]

WallClock = Callable[[], datetime]
"""Returns the current time as an aware UTC `datetime`."""

MonotonicClock = Callable[[], float]
"""Returns seconds from an arbitrary origin; never goes back."""

UnixClock = Callable[[], float]
"""Returns Unix seconds (`time.time`): comparable between the bridge's instances."""

Sleep = Callable[[float], Awaitable[None]]
"""Waits that many seconds of the `MonotonicClock`'s time (`asyncio.sleep`)."""


def utc_now() -> datetime:
    """The default `WallClock`: the system's time, in UTC."""
    return datetime.now(UTC)
