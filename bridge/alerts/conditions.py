"""Alert conditions as pure state: readings in, "fire" / "resolve" transitions out.

A condition is bad or good at each check. It fires once it has been bad for `hold_s`
without a break (a link down 3 s in a 10 s allowance is not an alert), and resolves at the
first good reading after it fired. Time is whatever the caller passes, so tests move a
number instead of sleeping. `RateWindow` is the sliding share of degraded routing decisions.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Held", "RateWindow", "Reading", "Transition"]

Transition = Literal["fire", "resolve"]


@dataclass(frozen=True, slots=True)
class Reading:
    """One look at a condition: `bad`, and what to tell the technician about it."""

    bad: bool
    message: str = ""
    value: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Held:
    """Bad for `hold_s` in a row fires; the next good reading after a firing resolves."""

    hold_s: float = 0.0
    bad_since: float | None = None
    firing: bool = False

    def update(self, bad: bool, now: float) -> Transition | None:
        if not bad:
            self.bad_since = None
            if self.firing:
                self.firing = False
                return "resolve"
            return None
        if self.bad_since is None:
            self.bad_since = now
        if not self.firing and now - self.bad_since >= self.hold_s:
            self.firing = True
            return "fire"
        return None

    def bad_for(self, now: float) -> float:
        return 0.0 if self.bad_since is None else now - self.bad_since


@dataclass(slots=True)
class RateWindow:
    """How many of the events of the last `window_s` were flagged (degraded decisions)."""

    window_s: float
    _events: deque[tuple[float, bool]] = field(default_factory=deque)

    def add(self, now: float, flagged: bool) -> None:
        self._events.append((now, flagged))
        self._trim(now)

    def counts(self, now: float) -> tuple[int, int]:
        """(flagged, total) within the window ending at `now`."""
        self._trim(now)
        return sum(1 for _, f in self._events if f), len(self._events)

    def _trim(self, now: float) -> None:
        while self._events and now - self._events[0][0] > self.window_s:
            self._events.popleft()
