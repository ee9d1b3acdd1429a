"""The reconcile plugin: rebuilds calls that ended while the bridge was down from the PBX's
CDRs (component `reconcile`; none with `[pbx] reconcile_s = 0`)."""

from __future__ import annotations

from bridge.alerts.plugin import ALERTER
from bridge.plugin import Plugin
from bridge.sync.periodic import build_reconciler

__all__ = ["RECONCILE"]

RECONCILE = Plugin(
    "reconcile", build=lambda ctx: build_reconciler(ctx.config, ctx.pool, ctx.need(ALERTER))
)
