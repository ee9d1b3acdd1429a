"""How the composition root builds the monitor from the parts already running.

    ("monitor", build_monitor)   # last in the registry: it watches everything before it

Each watch is added only when its part exists (AMI off: no AMI watch). The webhook reports
change lags to `change_lag(rt)`, made before the HTTP server is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.alerts.conditions import RateWindow
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
from bridge.records.spool import default_spool_dir

__all__ = ["build_monitor", "change_lag"]


def change_lag(rt: Any) -> ChangeLag:
    """The one change-lag meter of this runtime (the webhook feeds it, the monitor reads it)."""
    meter: ChangeLag | None = rt.built.get("change_lag")
    if meter is None:
        meter = rt.built["change_lag"] = ChangeLag()
    return meter


def build_monitor(rt: Any) -> Monitor | None:
    """Built even without an alert channel: the conditions still show in /metrics."""
    records = rt.built.get("records")
    if records is None:
        return None
    cfg = rt.config.alerts
    comps = rt.components
    watches: list[Watch] = []
    for name, label in (("ami", "AMI"), ("ari", "ARI")):
        if name in comps:
            watches.append(Watch(f"{name}_down", link_probe(label, comps[name]), cfg.link_down_s))
    watches.append(
        Watch(
            "record_lag", commit_lag_probe(records.writer.oldest_pending_end, cfg.lag_threshold_s)
        )
    )
    if "outbox" in comps:
        records.outbox.lag_alerts = False  # the monitor owns this alert and its resolution
        watches.append(Watch("sync_lag", outbox_lag_probe(comps["outbox"], cfg.lag_threshold_s)))
    watches.append(Watch("crm_change_lag", change_lag_probe(change_lag(rt), cfg.lag_threshold_s)))
    if "route" in comps:
        probe, observe = degraded_probe(
            RateWindow(cfg.degraded_window_s), cfg.degraded_pct, cfg.degraded_min_calls
        )
        comps["route"].on_decision(observe)
        watches.append(Watch("routing_degraded", probe))
    spool = Path(rt.config.records.spool_dir) if rt.config.records.spool_dir else None
    watches.append(
        Watch("spool_disk", spool_probe(spool or default_spool_dir(), cfg.spool_min_free_pct))
    )
    return Monitor(records.alerter, watches, interval_s=cfg.check_s)
