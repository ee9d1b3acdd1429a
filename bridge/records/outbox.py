"""The outbox worker: delivers finished call records to the CRM connector.

`call_outbox` (sql/030) holds one row per record; a trigger (re)queues it whenever the record
changes, disposition included. The worker claims due rows (`FOR UPDATE SKIP LOCKED`, with a
lease so a crashed worker's claims come back), reads each record, and calls
`connector.post_record(record)`; `call_id` is the idempotency key, delivery at-least-once.

- success: `delivered` (unless the record changed meanwhile: then it stays pending and is
  sent again with the new content);
- failure: retried with jittered exponential backoff (`backoff_s` .. `backoff_max_s`); after
  `[crm] max_attempts` failures the row is `dead` and a copy goes to `call_dead_letters`,
  with an alert. `crm-bridge sync run` re-sends dead and stuck rows.

Metrics: `crm_bridge_sync_lag_seconds` (call end -> delivered, histogram) and
`crm_bridge_sync_lag_oldest_seconds` (gauge: oldest undelivered), delivery failures, dead
letters, backlog. When the oldest undelivered record is older than `[alerts] lag_threshold_s`,
a "sync_lag" alert goes out (rate-limited by the alerter).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.clock import WallClock, utc_now
from bridge.component import Health
from bridge.connectors.base import CrmConnector
from bridge.db.errors import is_outage
from bridge.errors import BridgeError
from bridge.records import metrics
from bridge.records.store import RECORD_COLUMNS, record_json
from bridge.tasks import Backoff, cancel_and_wait

__all__ = ["OutboxStats", "OutboxWorker"]

log = logging.getLogger(__name__)


class AlertSink(Protocol):
    def alert(
        self, kind: str, key: str, message: str, details: dict[str, Any] | None = None
    ) -> bool: ...


@dataclass(frozen=True, slots=True)
class OutboxStats:
    backlog: int
    dead: int
    oldest_lag_s: float


_CLAIM = """
UPDATE call_outbox o SET next_attempt_at = now() + make_interval(secs => $2)
FROM (
    SELECT call_id FROM call_outbox
    WHERE state = 'pending' AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
) due
WHERE o.call_id = due.call_id
RETURNING o.call_id, o.attempts, o.ended_at, o.enqueued_at
"""

_DELIVERED = """
UPDATE call_outbox SET state = 'delivered', delivered_at = now(), last_error = NULL
WHERE call_id = $1 AND enqueued_at = $2 AND state = 'pending'
RETURNING delivered_at
"""

_FAILED = """
UPDATE call_outbox SET attempts = attempts + 1, last_error = $3,
    next_attempt_at = now() + make_interval(secs => $4),
    state = CASE WHEN attempts + 1 >= $5 THEN 'dead' ELSE 'pending' END
WHERE call_id = $1 AND enqueued_at = $2 AND state = 'pending'
RETURNING state, attempts
"""

_STATS = """
SELECT count(*) FILTER (WHERE state = 'pending') AS backlog,
       count(*) FILTER (WHERE state = 'dead') AS dead,
       min(COALESCE(ended_at, enqueued_at)) FILTER (WHERE state = 'pending') AS oldest
FROM call_outbox
"""


class OutboxWorker:
    name = "outbox"

    def __init__(
        self,
        pool: Any,
        connector: CrmConnector,
        *,
        max_attempts: int = 5,
        alerts: AlertSink | None = None,
        lag_threshold_s: float = 5.0,
        poll_s: float = 0.2,
        backoff_s: float = 1.0,
        backoff_max_s: float = 300.0,
        lease_s: float = 60.0,
        batch: int = 50,
        concurrency: int = 8,
        clock: WallClock = utc_now,
    ) -> None:
        self._pool = pool
        self.connector = connector
        self._max_attempts = max(1, max_attempts)
        self._alerts = alerts
        self._lag_threshold = lag_threshold_s
        self._poll = poll_s
        self._backoff = Backoff(backoff_s, backoff_max_s)  # a row's retries
        self._round_retry = Backoff(2 * poll_s, 5.0)  # a failed round (database down, a bug)
        self._lease = lease_s
        self._batch = batch
        self._sem = asyncio.Semaphore(concurrency)
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stats = OutboxStats(0, 0, 0.0)
        self._last_error: str | None = None
        self.delivered = 0
        self._listeners: list[Callable[[str, str, float], None]] = []
        # The run-time monitor turns this off: it owns the lag alert and its resolution.
        self.lag_alerts = True

    # --- component -------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    def health(self) -> Health:
        detail: dict[str, Any] = {
            "backlog": self._stats.backlog,
            "dead_letters": self._stats.dead,
            "oldest_lag_s": round(self._stats.oldest_lag_s, 3),
            "delivered": self.delivered,
        }
        if self._task is None:
            return Health("down", required=False, detail=detail)
        if self._last_error is not None or self._stats.oldest_lag_s > self._lag_threshold:
            if self._last_error:
                detail["error"] = self._last_error
            return Health("degraded", required=False, detail=detail)
        return Health("up", required=False, detail=detail)

    def wake(self) -> None:
        """Look for due rows now (the writer calls it after each commit)."""
        self._wake.set()

    def on_outcome(self, listener: Callable[[str, str, float], None]) -> None:
        """`listener(call_id, outcome, lag_s)` after each attempt; outcome is "delivered",
        "retry" or "dead" (tests, benchmarks)."""
        self._listeners.append(listener)

    def _tell(self, call_id: str, outcome: str, lag: float = 0.0) -> None:
        for listener in self._listeners:
            try:
                listener(call_id, outcome, lag)
            except Exception:
                log.exception("outbox listener failed")

    # --- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self._poll
        while True:
            try:
                sent = await self.run_once()
                await self.refresh_stats()
                self._last_error = None
                delay = self._poll
                self._round_retry.reset()
            except Exception as exc:
                if not is_outage(exc):
                    log.exception("outbox round failed")
                self._last_error = f"{type(exc).__name__}: {exc}"[:300]
                delay = self._round_retry.next()
                sent = 0
            if sent:
                continue  # there may be more due right away
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def run_once(self) -> int:
        """Claim and deliver one batch of due rows; return how many were claimed."""
        async with self._pool.acquire() as conn:
            claimed = await conn.fetch(_CLAIM, self._batch, self._lease)
            if not claimed:
                return 0
            rows = await conn.fetch(
                f"SELECT {RECORD_COLUMNS} FROM call_records WHERE call_id = ANY($1::text[])",
                [c["call_id"] for c in claimed],
            )
        records = {r["call_id"]: record_json(r) for r in rows}
        await asyncio.gather(*(self._deliver(c, records.get(c["call_id"])) for c in claimed))
        return len(claimed)

    async def _deliver(self, claim: Any, record: dict[str, Any] | None) -> None:
        call_id = claim["call_id"]
        if record is None:
            return  # the record was deleted; the row went with it (ON DELETE CASCADE)
        async with self._sem:
            try:
                await self.connector.post_record(record)
            except BridgeError as exc:
                await self._failed(claim, record, exc)
                return
            except Exception as exc:  # a connector bug must not kill the worker
                log.exception("connector failed on %r", call_id)
                await self._failed(claim, record, exc)
                return
        delivered_at = await self._pool.fetchval(_DELIVERED, call_id, claim["enqueued_at"])
        if delivered_at is None:
            return  # changed while in flight: still pending, will be sent again
        self.delivered += 1
        metrics.DELIVERED.inc()
        ended = claim["ended_at"]
        lag = max(0.0, (delivered_at - ended).total_seconds()) if ended else 0.0
        metrics.SYNC_LAG.observe(lag)
        self._tell(call_id, "delivered", lag)

    async def _failed(self, claim: Any, record: dict[str, Any], exc: BaseException) -> None:
        call_id = claim["call_id"]
        error = f"{type(exc).__name__}: {exc}"[:500]
        metrics.DELIVERY_FAILURES.labels(type(exc).__name__).inc()
        attempts = claim["attempts"] + 1
        backoff = self._backoff.delay(attempts - 1)
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                _FAILED, call_id, claim["enqueued_at"], error, backoff, self._max_attempts
            )
            if row is None or row["state"] != "dead":
                log.info("delivery of %r failed (attempt %d): %s", call_id, attempts, error)
                dead = False
            else:
                dead = True
                await conn.execute(
                    "INSERT INTO call_dead_letters (call_id, attempts, last_error, record)"
                    " VALUES ($1, $2, $3, $4)",
                    call_id,
                    row["attempts"],
                    error,
                    record,
                )
        if not dead:
            self._tell(call_id, "retry")
            return
        assert row is not None
        metrics.DEAD_LETTERS.inc()
        log.error("call record %r dead-lettered after %d attempts: %s", call_id, attempts, error)
        if self._alerts is not None:
            self._alerts.alert(
                "dead_letter",
                call_id,
                f"call record {call_id} could not be delivered to the CRM",
                {"call_id": call_id, "attempts": row["attempts"], "error": error},
            )
        self._tell(call_id, "dead")

    async def refresh_stats(self) -> OutboxStats:
        row = await self._pool.fetchrow(_STATS)
        oldest = row["oldest"]
        lag = max(0.0, (self._clock() - oldest).total_seconds()) if oldest else 0.0
        self._stats = OutboxStats(row["backlog"], row["dead"], lag)
        metrics.BACKLOG.set(row["backlog"])
        metrics.SYNC_LAG_OLDEST.set(lag)
        if lag > self._lag_threshold and self._alerts is not None and self.lag_alerts:
            # One key per ten minutes of backlog: a lasting backlog re-alerts now and then.
            bucket = int(self._clock().timestamp() // 600)
            self._alerts.alert(
                "sync_lag",
                str(bucket),
                f"call records wait {lag:.0f} s for the CRM (threshold "
                f"{self._lag_threshold:.0f} s)",
                {"oldest_lag_s": round(lag, 1), "backlog": row["backlog"], "dead": row["dead"]},
            )
        return self._stats

    async def drain(self) -> None:
        """Deliver until nothing is due (`sync run`); rows waiting in backoff are left."""
        while await self.run_once():
            pass
        await self.refresh_stats()
