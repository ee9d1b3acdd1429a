"""The monitor: every way the bridge's promise can break, checked each `[alerts] check_s`.

Each watch pairs a probe (a function returning a `Reading`) with a `Held` state; a firing
goes to the alerter as kind = the watch's name, key "condition", and its clearing as a
"resolved" notice. `check()` is one pass and takes no time of its own: tests call it after
moving the injected clock. Probes read state the parts already keep (link health, the
writer's queue, the outbox's stats, decisions seen, the spool's filesystem); none of them
touches the database, so the monitor keeps working when PostgreSQL does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from bridge.alerts import metrics
from bridge.alerts.conditions import Held, RateWindow, Reading
from bridge.clock import MonotonicClock, WallClock, utc_now
from bridge.component import Component, Health
from bridge.models import Decision
from bridge.tasks import cancel_and_wait

__all__ = [
    "ChangeLag",
    "Monitor",
    "Watch",
    "change_lag_probe",
    "commit_lag_probe",
    "degraded_probe",
    "link_probe",
    "outbox_lag_probe",
    "spool_probe",
]

log = logging.getLogger(__name__)

Probe = Callable[[], Reading | Awaitable[Reading]]


class Alerts(Protocol):
    def alert(
        self, kind: str, key: str, message: str, details: dict[str, Any] | None = None
    ) -> bool: ...

    def resolve(
        self, kind: str, key: str, message: str, details: dict[str, Any] | None = None
    ) -> bool: ...


@dataclass
class Watch:
    name: str
    probe: Probe
    hold_s: float = 0.0
    state: Held = field(init=False)

    def __post_init__(self) -> None:
        self.state = Held(self.hold_s)


class Monitor:
    name = "monitor"

    def __init__(
        self,
        alerts: Alerts,
        watches: list[Watch],
        *,
        interval_s: float = 1.0,
        clock: MonotonicClock = time.monotonic,
    ) -> None:
        self._alerts = alerts
        self.watches = {w.name: w for w in watches}
        self._interval = interval_s
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="monitor")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    def health(self) -> Health:
        firing = sorted(n for n, w in self.watches.items() if w.state.firing)
        return Health("degraded" if firing else "up", required=False, detail={"firing": firing})

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self._interval)

    async def check(self) -> list[tuple[str, str]]:
        """Look at every condition once; return the (name, "fire"|"resolve") transitions."""
        now = self._clock()
        out: list[tuple[str, str]] = []
        for name, watch in self.watches.items():
            try:
                reading = watch.probe()
                if inspect.isawaitable(reading):
                    reading = await reading
            except Exception:
                log.exception("monitor probe %s failed", name)
                continue
            assert isinstance(reading, Reading)
            change = watch.state.update(reading.bad, now)
            metrics.CONDITION.labels(name).set(1 if watch.state.firing else 0)
            if change == "fire":
                self._alerts.alert(name, "condition", reading.message, reading.details)
            elif change == "resolve":
                self._alerts.resolve(name, "condition", f"{name} cleared", reading.details)
            if change is not None:
                log.warning("alert %s: %s", name, "firing" if change == "fire" else "resolved")
                out.append((name, change))
        return out


# --- probes ---------------------------------------------------------------------------------


def link_probe(label: str, component: Component) -> Probe:
    """Bad while the link is not up (a start that never connects counts)."""

    def probe() -> Reading:
        state = component.health().state
        return Reading(
            state not in ("up", "disabled"),
            f"{label} link to Asterisk is {state}",
            details={"link": label, "state": state},
        )

    return probe


def _age(then: datetime | None, now: datetime) -> float:
    return 0.0 if then is None else max(0.0, (now - then).total_seconds())


def commit_lag_probe(
    oldest_pending_end: Callable[[], datetime | None],
    threshold_s: float,
    clock: WallClock = utc_now,
) -> Probe:
    """Bad while a call's end waits more than `threshold_s` to become a committed record."""

    def probe() -> Reading:
        lag = _age(oldest_pending_end(), clock())
        metrics.COMMIT_LAG.set(lag)
        return Reading(
            lag > threshold_s,
            f"a call ended {lag:.0f} s ago is not yet a call record (threshold {threshold_s:g} s)",
            lag,
            {"lag_s": round(lag, 1), "threshold_s": threshold_s},
        )

    return probe


def outbox_lag_probe(outbox: Component, threshold_s: float) -> Probe:
    """Bad while the oldest record waits more than `threshold_s` for the CRM."""

    def probe() -> Reading:
        detail = outbox.health().detail
        lag = float(detail.get("oldest_lag_s", 0.0))
        return Reading(
            lag > threshold_s,
            f"call records wait {lag:.0f} s for the CRM (threshold {threshold_s:g} s)",
            lag,
            {"oldest_lag_s": lag, "backlog": detail.get("backlog"), "threshold_s": threshold_s},
        )

    return probe


class ChangeLag:
    """The lag of the latest CRM change the bridge applied, from the change's own time."""

    def __init__(self) -> None:
        self.last_s: float | None = None
        self.worst_s = 0.0  # since the last look: one late change among quick ones counts

    def observe(self, lag_s: float) -> None:
        lag_s = max(0.0, lag_s)
        self.last_s = lag_s
        self.worst_s = max(self.worst_s, lag_s)
        metrics.CHANGE_LAG.set(lag_s)


def change_lag_probe(meter: ChangeLag, threshold_s: float) -> Probe:
    """Bad from a change that arrived late until one arrives within `threshold_s`."""
    late = [False]

    def probe() -> Reading:
        worst, meter.worst_s = meter.worst_s, 0.0
        if worst > threshold_s:
            late[0] = True
        elif meter.last_s is not None and meter.last_s <= threshold_s and worst:
            late[0] = False
        return Reading(
            late[0],
            f"a CRM change reached the bridge {worst:.0f} s after it was made"
            f" (threshold {threshold_s:g} s)",
            worst,
            {"lag_s": round(worst, 1), "threshold_s": threshold_s},
        )

    return probe


def degraded_probe(
    window: RateWindow,
    pct: float,
    min_calls: int,
    clock: MonotonicClock = time.monotonic,
) -> tuple[Probe, Callable[[Decision], None]]:
    """(probe, observer): feed the observer every decision; bad above `pct` % degraded."""

    def observe(decision: Decision) -> None:
        window.add(clock(), decision.degraded)

    def probe() -> Reading:
        degraded, total = window.counts(clock())
        share = degraded / total if total else 0.0
        metrics.DEGRADED_SHARE.set(share)
        return Reading(
            total >= min_calls and share * 100 > pct,
            f"{degraded} of {total} calls in {window.window_s:.0f} s were routed degraded"
            f" (CRM slow or down; threshold {pct:g} %)",
            share * 100,
            {"degraded": degraded, "calls": total, "threshold_pct": pct},
        )

    return probe, observe


def disk_free_ratio(path: Path) -> float:
    """Free share of the filesystem `path` is (or will be, once created) on."""
    while not path.exists() and path.parent != path:
        path = path.parent
    usage = shutil.disk_usage(path)
    return usage.free / usage.total if usage.total else 1.0


def spool_probe(
    path: Path, min_free_pct: float, free_ratio: Callable[[Path], float] = disk_free_ratio
) -> Probe:
    """Bad while the spool's filesystem has less than `min_free_pct` % free."""

    def probe() -> Reading:
        ratio = 1.0
        with contextlib.suppress(OSError):  # not created yet: nothing to fill
            ratio = free_ratio(path)
        metrics.SPOOL_FREE.set(ratio)
        return Reading(
            ratio * 100 < min_free_pct,
            f"the spool's disk ({path}) is {100 - ratio * 100:.1f} % full"
            f" (alert below {min_free_pct:g} % free)",
            ratio * 100,
            {"path": str(path), "free_pct": round(ratio * 100, 2)},
        )

    return probe
