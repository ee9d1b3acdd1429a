"""Verified webhook requests seen lately, so that a captured one replayed changes nothing.

A HubSpot request stays valid for its 5-minute timestamp window and a Zoho notification
carries a fixed token: anyone who captured one could post it again and again, each time
dropping its customers (and every cached "unknown number") from the cache and making the
in-flight lookups' answers unstorable - calls would then all go to a rate-limited CRM. The
guard remembers a digest of each verified body for `window_s` (HubSpot's window), bounded
by `max_seen` (oldest out first); only verified requests enter it, so a forger cannot fill
it. A real CRM never sends one body twice on success: its bodies carry event ids and times.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict

from bridge.clock import MonotonicClock

__all__ = ["ReplayGuard"]


class ReplayGuard:
    def __init__(
        self,
        *,
        window_s: float = 300.0,
        max_seen: int = 10_000,
        clock: MonotonicClock = time.monotonic,
    ) -> None:
        self._window = window_s
        self._max = max(1, max_seen)
        self._clock = clock
        self._seen: OrderedDict[bytes, float] = OrderedDict()  # digest -> first seen, oldest first

    def __len__(self) -> int:
        return len(self._seen)

    def first_time(self, body: bytes) -> bool:
        """True (and remembered) unless this body was seen within the window."""
        now = self._clock()
        while self._seen and now - next(iter(self._seen.values())) > self._window:
            self._seen.popitem(last=False)
        digest = hashlib.sha256(body).digest()
        if digest in self._seen:
            return False
        self._seen[digest] = now
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)
        return True
