"""The alerts' plugins: the alerter (`alerts`, early: others send through it) and the
monitor (`monitor`, last: it watches the parts started before it).

What the monitor watches is provided under the keys below by the plugins owning those
parts (the call records, the route service), so this package imports none of them. A watch
is added only when its part exists (AMI off: no AMI watch).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Protocol

from bridge.alerts.alerter import Alerter
from bridge.alerts.conditions import RateWindow
from bridge.alerts.loop_lag import LoopLag
from bridge.alerts.monitor import (
    ChangeLag,
    Monitor,
    Watch,
    change_lag_probe,
    commit_lag_probe,
    degraded_probe,
    link_probe,
    outbox_lag_probe,
    spool_probe,
)
from bridge.cluster.plugin import leader_only
from bridge.component import Component
from bridge.models import Decision
from bridge.plugin import Context, Key, Plugin

__all__ = [
    "ALERTER",
    "ALERTS",
    "CHANGE_LAG",
    "MONITOR",
    "PENDING_END",
    "ROUTE_DECISIONS",
    "SPOOL_DIR",
    "WATCHED_OUTBOX",
    "WatchedOutbox",
]


class WatchedOutbox(Component, Protocol):
    lag_alerts: bool  # False: the monitor owns the lag alert and its resolution


ALERTER: Key[Alerter] = Key("alerter")
# The CRM webhook reports each applied change's lag here; the monitor reads it.
CHANGE_LAG: Key[ChangeLag] = Key("change_lag")
# The end time of the oldest call not yet a committed record (the record writer's).
PENDING_END: Key[Callable[[], datetime | None]] = Key("pending_end")
WATCHED_OUTBOX: Key[WatchedOutbox] = Key("watched_outbox")
SPOOL_DIR: Key[Path] = Key("spool_dir")
# Registers an observer of every routing decision (the route service's `on_decision`).
ROUTE_DECISIONS: Key[Callable[[Callable[[Decision], None]], None]] = Key("route_decisions")

_LINKS = (("ami", "AMI"), ("ari", "ARI"))  # started components whose link is watched


def _alerter(ctx: Context) -> Alerter:
    return ctx.provide(ALERTER, Alerter(ctx.config.alerts))


def _prepare_monitor(ctx: Context) -> None:
    ctx.provide(CHANGE_LAG, ChangeLag())  # before the HTTP routes that feed it are mounted


def _monitor(ctx: Context) -> Monitor | None:
    """Built even without an alert channel: the conditions still show in /metrics."""
    alerter, pending_end = ctx.maybe(ALERTER), ctx.maybe(PENDING_END)
    if alerter is None or pending_end is None:  # no call records to watch
        return None
    cfg = ctx.config.alerts
    watches: list[Watch] = []
    for name, label in _LINKS:
        link = ctx.components.get(name)
        if link is not None:
            watches.append(Watch(f"{name}_down", link_probe(label, link), cfg.link_down_s))
    watches.append(Watch("record_lag", commit_lag_probe(pending_end, cfg.lag_threshold_s)))
    outbox = ctx.maybe(WATCHED_OUTBOX)
    if outbox is not None:
        outbox.lag_alerts = False  # the monitor owns this alert and its resolution
        watches.append(Watch("sync_lag", outbox_lag_probe(outbox, cfg.lag_threshold_s)))
    lag = ctx.need(CHANGE_LAG)
    watches.append(Watch("crm_change_lag", change_lag_probe(lag, cfg.lag_threshold_s)))
    decisions = ctx.maybe(ROUTE_DECISIONS)
    if decisions is not None:
        probe, observe = degraded_probe(
            RateWindow(cfg.degraded_window_s), cfg.degraded_pct, cfg.degraded_min_calls
        )
        decisions(observe)
        watches.append(Watch("routing_degraded", probe))
    spool = spool_probe(ctx.need(SPOOL_DIR), cfg.spool_min_free_pct)
    watches.append(Watch("spool_disk", spool))
    return Monitor(alerter, watches, interval_s=cfg.check_s)


ALERTS = Plugin("alerts", build=_alerter)
EVENT_LOOP = Plugin("event_loop", build=lambda ctx: LoopLag())
MONITOR = Plugin(
    "monitor", prepare=_prepare_monitor, build=lambda ctx: leader_only(ctx, _monitor(ctx))
)
