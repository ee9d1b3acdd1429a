"""Bounded logging of refusals: one line when an episode starts, one when it ends.

Under attack a port may refuse thousands of connections a second; a line each would bury the
log and cost more than the refusal. An episode runs from the first refusal until `quiet_s`
without one; a reminder line every `remind_s` says a long one still goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from bridge.clock import MonotonicClock


class EpisodeLog:
    """Counts refusals by reason and logs them per episode, not per connection."""

    def __init__(
        self,
        logger: logging.Logger,
        subject: str,
        *,
        quiet_s: float = 10.0,
        remind_s: float = 300.0,
        clock: MonotonicClock = time.monotonic,
    ) -> None:
        self._log = logger
        self._subject = subject
        self._quiet_s = quiet_s
        self._remind_s = remind_s
        self._clock = clock
        self._counts: Counter[str] = Counter()
        self._started: float | None = None
        self._last = 0.0
        self._reminded = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.episodes = 0

    @property
    def active(self) -> bool:
        return self._started is not None

    def note(self, reason: str, peer: str = "") -> None:
        """One refusal. Logs only when it opens an episode or a reminder is due."""
        now = self._clock()
        if self._started is None:
            self._started = self._reminded = now
            self._counts.clear()
            self.episodes += 1
            self._log.warning(
                "%s: refusing connections (first: %s%s); a summary follows when it stops",
                self._subject,
                reason,
                f" from {peer}" if peer else "",
            )
        elif now - self._reminded >= self._remind_s:
            self._reminded = now
            self._log.warning(
                "%s: still refusing connections: %s", self._subject, self._summary(now)
            )
        self._counts[reason] += 1
        self._last = now
        if self._timer is None:
            self._schedule(now)

    def tick(self) -> None:
        """Close the episode if it has been quiet long enough (the timer calls this)."""
        self._timer = None
        if self._started is None:
            return
        now = self._clock()
        if now - self._last >= self._quiet_s:
            self._end(now)
        else:
            self._schedule(now)

    def close(self) -> None:
        """Stop the timer; an open episode is summed up now (on server stop)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._started is not None:
            self._end(self._clock())

    def _schedule(self, now: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): tick() is called by hand
            return
        self._timer = loop.call_later(max(0.0, self._last + self._quiet_s - now), self.tick)

    def _end(self, now: float) -> None:
        self._log.warning("%s: stopped refusing connections: %s", self._subject, self._summary(now))
        self._started = None
        self._counts.clear()

    def _summary(self, now: float) -> str:
        assert self._started is not None
        total = sum(self._counts.values())
        reasons = ", ".join(f"{reason} {n}" for reason, n in self._counts.most_common())
        return f"{total} in {now - self._started:.0f} s ({reasons})"
