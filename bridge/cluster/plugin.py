"""The cluster plugin: the lease that several bridge instances sharing one database follow
(component `cluster`, early: the once-only jobs follow it), and the instance in /healthz
and /metrics.

The once-only jobs (merge notices, reconciliation, the monitor) are wrapped by their own
plugins with `leader_only(ctx, component)`: run by the lease holder only, or as they are
when there is no lease (a context built without `run_bridge`, in tests). The lease holds its
own connection, outside the pool.
"""

from __future__ import annotations

from bridge.cluster.identity import this_instance
from bridge.cluster.leader_only import LeaderOnly
from bridge.cluster.lease import Lease
from bridge.cluster.metrics import instance_labelled
from bridge.component import Component
from bridge.db.pool import connect
from bridge.plugin import Context, Http, Plugin
from bridge.web.health import INSTANCE_SOURCE, METRICS_REGISTRY

__all__ = ["CLUSTER", "leader_only"]


def _lease(ctx: Context) -> Lease | None:
    url = ctx.database_url
    if url is None:
        return None
    cfg = ctx.config.cluster
    return Lease(lambda: connect(url), this_instance(cfg.instance_id), takeover_s=cfg.takeover_s)


def leader_only(ctx: Context, component: Component | None) -> Component | None:
    """`component` run only by the lease holder; as it is when there is no lease."""
    lease = ctx.components.get("cluster")
    if component is None or not isinstance(lease, Lease):
        return component
    return LeaderOnly(component, lease)


def _web(http: Http, ctx: Context) -> None:
    """/healthz shows `instance` (id, role, peers); /metrics labels samples by instance."""
    lease = ctx.components.get("cluster")
    if not isinstance(lease, Lease):
        return
    http.app[INSTANCE_SOURCE] = lease.describe
    http.app[METRICS_REGISTRY] = instance_labelled(http.app[METRICS_REGISTRY], lease.instance.id)


CLUSTER = Plugin("cluster", build=_lease, routes=_web)
