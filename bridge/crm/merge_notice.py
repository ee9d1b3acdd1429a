"""Component `merge_notice`: tells the CRM connector of every customer merge (issue 17).

`crm-bridge customers merge` may run on any machine, with or without a bridge running: it
only writes `customer_merges` (sql/085), whose trigger sends NOTIFY `crm_customer_merged`.
This component hands each merge the connector has not acknowledged to `connector.merged`,
oldest first (`deliver_pending_merges`), in rounds:

- at start, on each notification, and every `[crm] merge_retry_s` while some remain (also
  whenever the shared listener may have missed notifications);
- a failure ends the round and leaves that merge and the later ones pending, so the order
  is kept; the next round comes after a jittered backoff (1 s doubling up to
  `merge_retry_s`), and notifications do not shorten it. Nothing else waits on this:
  call routing and record delivery never see a slow CRM here. `health()` says how many are
  pending and why the last round failed;
- one round at a time across bridges sharing the database: a round runs under the session
  advisory lock `MERGE_LOCK` (`pg_try_advisory_lock`); a bridge that does not get it skips
  the round (the holder delivers), and tries again at its next one.

Delivery is at-least-once (a crash between the CRM's answer and the mark sends it again),
which is why `merged` must be idempotent on the merge id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import asyncpg

from bridge.clock import Sleep
from bridge.component import Health
from bridge.crm.listener import PgListener
from bridge.crm.merge import Db, MergeRecord, deliver_pending_merges
from bridge.db.errors import DB_ERRORS
from bridge.db.pool import holds_session_state
from bridge.tasks import Backoff, Rng, cancel_and_wait

__all__ = ["CHANNEL", "MERGE_LOCK", "MergeNotifier", "RoundResult"]

log = logging.getLogger(__name__)

CHANNEL = "crm_customer_merged"
MERGE_LOCK = 0x6D65_7267_6E6F_7469  # "mergnoti": the session advisory lock of a round

Tell = Callable[[MergeRecord], Awaitable[None]]
# "busy": another bridge holds the lock; "more": a full batch went, more are waiting
RoundResult = Literal["done", "more", "failed", "busy"]


class MergeNotifier:
    """Delivers pending merges to `tell` (normally `connector.merged`). Build it before the
    shared listener starts: the constructor subscribes."""

    name = "merge_notice"

    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        tell: Tell,
        *,
        listener: PgListener | None = None,
        retry_s: float = 60.0,
        backoff_s: float = 1.0,
        batch: int = 100,
        sleep: Sleep = asyncio.sleep,
        rng: Rng = random.random,
    ) -> None:
        self._pool = pool
        self._tell = tell
        self._listener = listener
        self._retry_s = retry_s
        self._backoff = Backoff(backoff_s, retry_s, rng=rng)  # retry_s caps it
        self._batch = batch
        self._sleep = sleep
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._round_lock = asyncio.Lock()
        self.failures = 0  # consecutive failed rounds
        self.delivered = 0
        self.pending = 0
        self.last_error = ""
        self.rounds = 0
        self._round_done = asyncio.Condition()
        if listener is not None:
            listener.subscribe(CHANNEL, self._on_notify, self.wake)

    # --- Component -----------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="merge-notice")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    def health(self) -> Health:
        detail: dict[str, Any] = {"pending": self.pending, "delivered": self.delivered}
        if self.failures:
            detail |= {"failures": self.failures, "error": self.last_error}
            return Health("degraded", required=False, detail=detail)
        if self._task is None:
            return Health("down", required=False, detail=detail)
        return Health("up", required=False, detail=detail)

    # --- triggers --------------------------------------------------------------------------

    def wake(self) -> None:
        """Run a round soon (a new merge, or notifications may have been missed)."""
        self._wake.set()

    def _on_notify(self, _payload: str) -> None:
        self._wake.set()

    # --- one round -------------------------------------------------------------------------

    async def deliver_round(self) -> RoundResult:
        """One delivery round under the advisory lock; never raises for a failing CRM or
        database (the result says what happened, `health()` why)."""
        async with self._round_lock:
            try:
                result = await self._locked_round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the CRM's errors, the database's, or a connector bug
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning(
                    "merge notice: the CRM was not told (attempt %d, %d pending): %s",
                    self.failures,
                    self.pending,
                    self.last_error,
                )
                result = "failed"
            async with self._round_done:
                self.rounds += 1
                self._round_done.notify_all()
            return result

    async def _locked_round(self) -> RoundResult:
        async with self._pool.acquire() as conn:
            holds_session_state(conn)  # the session lock must not outlive this round
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", MERGE_LOCK):
                return "busy"
            try:
                # On the lock's own connection: a round takes one of the pool, not two.
                told = await deliver_pending_merges(conn, self._told, limit=self._batch)
            finally:
                with contextlib.suppress(*DB_ERRORS):  # for health(); the round says the rest
                    self.pending = await self._count_pending(conn)
                await conn.execute("SELECT pg_advisory_unlock($1)", MERGE_LOCK)
        if self.failures:
            log.info("merge notice: the CRM takes merges again")
        self.failures, self.last_error = 0, ""
        return "more" if told >= self._batch and self.pending else "done"

    async def _told(self, record: MergeRecord) -> None:
        await self._tell(record)
        self.delivered += 1

    async def _count_pending(self, conn: Db) -> int:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM customer_merges WHERE crm_notified_at IS NULL"
            )
        )

    async def wait_rounds(self, count: int) -> None:
        """Wait until `count` rounds have run in all (for tests and the CLI)."""
        async with self._round_done:
            await self._round_done.wait_for(lambda: self.rounds >= count)

    # --- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # a merge notified during the round wakes the next one
            result = await self.deliver_round()
            if result == "more":
                continue
            if result == "failed":
                await self._sleep(self._backoff.delay(max(0, self.failures - 1)))
                continue
            if result == "busy" or self.pending or not self._listening():
                await self._wait_wake(self._retry_s)
            else:
                await self._wake.wait()

    def _listening(self) -> bool:
        return self._listener is not None and self._listener.listening

    async def _wait_wake(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
