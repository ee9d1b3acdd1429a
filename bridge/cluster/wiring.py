"""How the composition root builds the lease and hands it to the once-only jobs.

    ("cluster", build_lease),                               # early: the jobs follow it
    ("reconcile", lambda rt: leader_only(rt, _reconcile(rt))),

`build_lease` needs the database URL (`rt.built["database_url"]`): the lease holds its own
connection, outside the pool.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bridge.cluster.identity import this_instance
from bridge.cluster.leader_only import LeaderOnly
from bridge.cluster.lease import Lease
from bridge.cluster.metrics import instance_labelled
from bridge.component import Component
from bridge.db.pool import connect
from bridge.web.health import INSTANCE_SOURCE, METRICS_REGISTRY

__all__ = ["build_lease", "leader_only", "setup_cluster_web"]


def build_lease(rt: Any) -> Lease | None:
    url: str | None = rt.built.get("database_url")
    if url is None:  # a runtime built without run_bridge (tests): no cluster
        return None
    cfg = rt.config.cluster
    return Lease(lambda: connect(url), this_instance(cfg.instance_id), takeover_s=cfg.takeover_s)


def leader_only(rt: Any, component: Component | None) -> Component | None:
    """`component` run only by the lease holder; as is when there is no lease."""
    lease = rt.components.get("cluster")
    if component is None or not isinstance(lease, Lease):
        return component
    return LeaderOnly(component, lease)


def setup_cluster_web(app: web.Application, rt: Any) -> None:
    """/healthz shows `instance` (id, role, peers); /metrics labels samples by instance."""
    lease = rt.components.get("cluster")
    if not isinstance(lease, Lease):
        return
    app[INSTANCE_SOURCE] = lease.describe
    app[METRICS_REGISTRY] = instance_labelled(app[METRICS_REGISTRY], lease.instance.id)
