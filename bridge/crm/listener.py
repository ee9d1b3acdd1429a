"""One LISTEN connection that survives its own death, shared by every cache that needs it.

The caller-lookup cache and the rule cache are only correct while notifications arrive. So
the listener holds a dedicated connection, notices when it dies (asyncpg's termination
callback, plus a keepalive query for half-open sockets), re-listens with a jittered backoff,
and tells every subscriber to drop its cache whenever it may have missed something: when the
connection is lost and again once it listens anew. `listening` is false in between, and
subscribers must not fill their caches then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from bridge.component import Health
from bridge.db.errors import DB_ERRORS
from bridge.db.pool import holds_session_state
from bridge.tasks import Backoff, cancel_and_wait

log = logging.getLogger(__name__)

Handler = Callable[[str], None]  # called with the notification payload
Reset = Callable[[], None]  # called when notifications may have been missed


@dataclass
class _Subscription:
    channel: str
    on_notify: Handler
    on_reset: Reset


class PgListener:
    """LISTEN on a few channels over one connection taken from `pool` for as long as it lives."""

    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        *,
        keepalive_s: float = 10.0,
        backoff_max_s: float = 30.0,
        name: str = "crm-listener",
    ) -> None:
        self.name = name
        self._pool = pool
        self._keepalive_s = keepalive_s
        self._backoff_max_s = backoff_max_s
        self._subs: list[_Subscription] = []
        self._task: asyncio.Task[None] | None = None
        self._state: str = "starting"
        self._last_error = ""
        self._changed = asyncio.Condition()
        self.generation = 0  # +1 each time LISTEN is (re)established
        self.backend_pid: int | None = None

    # --- subscribers -----------------------------------------------------------------

    def subscribe(self, channel: str, on_notify: Handler, on_reset: Reset) -> None:
        """Register before `start()`; `on_notify(payload)` runs in the event loop."""
        if self._task is not None:
            raise RuntimeError("subscribe() before start()")
        self._subs.append(_Subscription(channel, on_notify, on_reset))

    @property
    def listening(self) -> bool:
        return self._state == "up"

    # --- Component ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening; returns once listening or after the first failed attempt."""
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._run(), name=self.name)
        async with self._changed:
            await self._changed.wait_for(lambda: self._state != "starting")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self._state = "down"

    def health(self) -> Health:
        detail: dict[str, Any] = {"generation": self.generation}
        if self._last_error:
            detail["last_error"] = self._last_error
        if self.listening:
            return Health("up", required=False, detail=detail)
        if self._state == "starting":
            return Health("starting", required=False, detail=detail)
        return Health("down", required=False, detail=detail)

    async def wait_listening(self, after_generation: int = 0) -> int:
        """Wait until listening with a generation above `after_generation`; return it."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: self.listening and self.generation > after_generation
            )
        return self.generation

    # --- the loop ----------------------------------------------------------------------

    async def _set_state(self, state: str) -> None:
        async with self._changed:
            self._state = state
            self._changed.notify_all()

    def _reset_all(self) -> None:
        for sub in self._subs:
            try:
                sub.on_reset()
            except Exception:  # a subscriber's bug must not stop the others
                log.exception("%s: reset handler failed", self.name)

    def _dispatch(self, _conn: Any, _pid: int, channel: str, payload: object) -> None:
        for sub in self._subs:
            if sub.channel != channel:
                continue
            try:
                sub.on_notify(payload if isinstance(payload, str) else "")
            except Exception:
                log.exception("%s: handler for %s failed; resetting", self.name, channel)
                sub.on_reset()

    async def _run(self) -> None:
        backoff = Backoff(0.1, self._backoff_max_s)
        while True:
            try:
                await self._listen_once()
                backoff.reset()  # it worked for a while: start the backoff afresh
            except DB_ERRORS as exc:
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.warning("%s: connection failed: %s", self.name, self._last_error)
            await self._set_state("down")
            self._reset_all()
            await asyncio.sleep(backoff.next())

    async def _listen_once(self) -> None:
        lost = asyncio.Event()
        conn = await asyncio.wait_for(self._pool.acquire(), timeout=10)
        holds_session_state(conn)  # LISTEN: UNLISTEN * when it goes back to the pool
        graceful = False  # only a stop() hands the connection back for reuse
        try:
            conn.add_termination_listener(lambda _c: lost.set())
            async with asyncio.timeout(max(2.0, self._keepalive_s)):  # a stuck socket, too
                for channel in {s.channel for s in self._subs}:
                    await conn.add_listener(channel, self._dispatch)
            self.backend_pid = conn.get_server_pid()
            self.generation += 1
            self._reset_all()  # anything cached before now may have missed a notification
            await self._set_state("up")
            log.info("%s: listening (pid %s)", self.name, self.backend_pid)
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), self._keepalive_s)
                except TimeoutError:
                    # No traffic for a while: prove the connection still answers (a
                    # half-open socket never reports its own death).
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), self._keepalive_s)
            self._last_error = "connection lost"
            log.warning("%s: connection lost; re-listening", self.name)
        except asyncio.CancelledError:
            graceful = True
            raise
        finally:
            self._state = "down"
            await self._release(conn, graceful=graceful)

    async def _release(self, conn: Any, *, graceful: bool) -> None:
        """Give the connection back; a suspect one is closed first so it is never reused."""
        if graceful and not conn.is_closed():
            try:
                for channel in {s.channel for s in self._subs}:
                    await asyncio.wait_for(conn.remove_listener(channel, self._dispatch), 2)
            except DB_ERRORS:
                conn.terminate()
        elif not conn.is_closed():
            conn.terminate()
        try:
            await asyncio.wait_for(self._pool.release(conn), 5)
        except (*DB_ERRORS, asyncpg.exceptions.InternalClientError):
            conn.terminate()
