"""The reconcile plugin: rebuilds calls that ended while the bridge was down from each
PBX's CDRs (component `reconcile`: one PBX's reconciler, or several PBXs' grouped; none with
`reconcile_s = 0`). Run by the cluster's lease holder only."""

from __future__ import annotations

from bridge.alerts.plugin import ALERTER
from bridge.cluster.plugin import leader_only
from bridge.component import Component
from bridge.pbx.group import grouped
from bridge.plugin import Context, Plugin
from bridge.sync.namespaced import site_reconciler

__all__ = ["RECONCILE"]


def _reconcile(ctx: Context) -> Component | None:
    alerter = ctx.need(ALERTER)
    parts = [
        (site.name, site_reconciler(ctx.config, site, ctx.pool, alerter))
        for site in ctx.config.pbxs
    ]
    return leader_only(ctx, grouped("reconcile", parts))


RECONCILE = Plugin("reconcile", build=_reconcile)
