"""OAuth access tokens kept fresh: fetched once, shared, renewed before they expire.

`get()` returns a token valid for at least `margin_s` more seconds, fetching a new one when
it is missing or about to expire; concurrent callers share one fetch (a lock), so a burst
of lookups after an expiry costs the CRM one token request. `invalidate()` drops a token
the CRM refused (401) so the next `get()` fetches a new one. `refresh_loop()` renews ahead
of expiry in the background, so a call's lookup rarely pays for a token request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bridge.clock import MonotonicClock

__all__ = ["TokenCache"]

Fetch = Callable[[], Awaitable[tuple[str, float | None]]]  # token, lifetime in seconds


class TokenCache:
    def __init__(
        self,
        fetch: Fetch,
        *,
        margin_s: float = 60.0,
        default_ttl_s: float = 900.0,
        clock: MonotonicClock = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._margin = margin_s
        self._default_ttl = default_ttl_s
        self._clock = clock
        self._token = ""
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0

    def __repr__(self) -> str:
        return f"TokenCache(valid={self.valid()})"

    def valid(self) -> bool:
        return bool(self._token) and self._clock() < self._expires_at - self._margin

    def expires_in(self) -> float:
        return self._expires_at - self._clock() if self._token else 0.0

    def invalidate(self) -> None:
        self._token = ""
        self._expires_at = 0.0

    async def get(self, *, force: bool = False) -> str:
        if not force and self.valid():
            return self._token
        async with self._lock:
            if force or not self.valid():
                token, ttl = await self._fetch()
                self.fetches += 1
                life = self._default_ttl if ttl is None or ttl <= 0 else ttl
                self._token = token
                self._expires_at = self._clock() + life
        return self._token

    async def refresh_loop(self) -> None:
        """Renew each token `margin_s` before it expires (failures retried after a pause)."""
        while True:
            delay = max(1.0, self.expires_in() - self._margin) if self._token else 30.0
            await asyncio.sleep(delay)
            try:
                await self.get(force=True)  # the old token stays usable if this fails
            except Exception:  # the next lookup retries and reports; keep the loop alive
                await asyncio.sleep(30.0)
