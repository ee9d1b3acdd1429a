"""Component `reconcile`: the backfill of `crm-bridge sync run`, every `[pbx] reconcile_s`
inside `crm-bridge run`, so a call that ended while the bridge was down (or whose end the
link lost) gets its record within minutes, not at the next nightly cron.

Each run looks back over `max_call_s` plus two periods, takes the same advisory lock as
`sync run` (several instances sharing a database never reconcile at once: the others skip
that turn) and never raises: a failed run is logged, counted and retried next period.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.component import Health
from bridge.config import Config
from bridge.db.pool import holds_session_state
from bridge.devices import DeviceMatcher
from bridge.sync import metrics
from bridge.sync.reconcile import DEFAULT_MAX_CALL_S, AlertSink, Backfill, backfill_on
from bridge.sync.sources import CdrSource, build_cdr_source
from bridge.tasks import cancel_and_wait

__all__ = ["SYNC_LOCK", "Reconciler", "build_reconciler"]

log = logging.getLogger(__name__)

SYNC_LOCK = 7_420_030  # pg_advisory_lock key shared with `crm-bridge sync run`


class Reconciler:
    name = "reconcile"

    def __init__(
        self,
        pool: Any,
        device_pattern: DeviceMatcher,
        *,
        region: str,
        period_s: float,
        source: CdrSource | None = None,
        max_call_s: float = DEFAULT_MAX_CALL_S,
        alerts: AlertSink | None = None,
        scope: str = "",
    ) -> None:
        self._pool = pool
        # Several PBXs: each reconciles its own calls (`scope`, its call id prefix) under its
        # own lock, so one PBX's run never makes another's skip its turn.
        self._scope = scope
        self._lock = SYNC_LOCK if not scope else scope_lock(scope)
        self._pattern = device_pattern
        self._period = period_s
        self._region = region  # [pbx] default_region
        self._source = source
        self._max_call_s = max_call_s
        self._alerts = alerts
        self._task: asyncio.Task[None] | None = None
        self._done = asyncio.Condition()
        self.runs = 0
        self.last: Backfill | None = None
        self.last_error: str | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="reconcile")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def health(self) -> Health:
        detail: dict[str, Any] = {
            "runs": self.runs,
            "source": self._source.description if self._source else None,
        }
        if self.last is not None:
            detail["backfilled"] = self.last.backfilled
            detail["unrebuildable"] = len(self.last.unrebuildable)
        if self._task is None:
            return Health("down", required=False, detail=detail)
        if self.last_error is not None:
            detail["error"] = self.last_error
            return Health("degraded", required=False, detail=detail)
        return Health("up", required=False, detail=detail)

    async def wait_runs(self, runs: int) -> None:
        """Until `runs` runs have finished (tests)."""
        async with self._done:
            await self._done.wait_for(lambda: self.runs >= runs)

    async def run_once(self) -> Backfill | None:
        """One reconciliation; None when another instance holds the lock."""
        since = datetime.now(UTC) - timedelta(seconds=self._max_call_s + 2 * self._period)
        async with self._pool.acquire() as conn:
            holds_session_state(conn)  # the session lock must not outlive this round
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock):
                return None
            try:
                return await backfill_on(
                    conn,
                    self._pattern,
                    since,
                    region=self._region,
                    source=self._source,
                    max_call_s=self._max_call_s,
                    alerts=self._alerts,
                    scope=self._scope,
                )
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", self._lock)

    async def _loop(self) -> None:
        while True:
            try:
                found = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                metrics.RUNS.labels("error").inc()
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("reconciliation failed, retried in %.0fs: %s", self._period, exc)
            else:
                metrics.RUNS.labels("skipped" if found is None else "ok").inc()
                self.last_error = None
                if found is not None:
                    self.last = found
                    if found.backfilled or found.unrebuildable:
                        log.info(
                            "reconciled: %d rebuilt, %d unrebuildable",
                            found.backfilled,
                            len(found.unrebuildable),
                        )
            self.runs += 1
            async with self._done:
                self._done.notify_all()
            await asyncio.sleep(self._period)


def scope_lock(scope: str) -> int:
    """The advisory lock of one PBX's reconciliation (stable across instances)."""
    return SYNC_LOCK * 1_000_000 + zlib.crc32(scope.encode()) % 1_000_000


def build_reconciler(config: Config, pool: Any, alerts: AlertSink | None) -> Reconciler | None:
    """The periodic reconciler of `config`, or None when `[pbx] reconcile_s = 0`."""
    if config.pbx.reconcile_s <= 0:
        return None
    zone = zoneinfo.ZoneInfo(config.pbx.cdr_timezone)
    return Reconciler(
        pool,
        config.device_regex,
        region=config.pbx.default_region,
        period_s=config.pbx.reconcile_s,
        source=build_cdr_source(config.pbx.cdr_source, zone),
        max_call_s=float(getattr(config.pbx, "max_call_s", DEFAULT_MAX_CALL_S)),
        alerts=alerts,
    )
