"""One of several PBXs' own CDR store, read in that PBX's namespace, so its reconciliation
rebuilds calls under the same call ids the live link gives them; and each PBX's periodic
reconciler (`site_reconciler`)."""

from __future__ import annotations

import dataclasses
import zoneinfo
from datetime import datetime
from typing import Any

from bridge.config import Config, PbxSite
from bridge.pbx.namespace import namespace_event, site_devices
from bridge.sync.periodic import Reconciler, build_reconciler
from bridge.sync.reconcile import AlertSink
from bridge.sync.sources import CdrBatch, CdrSource, build_cdr_source

__all__ = ["NamespacedSource", "site_cdr_source", "site_reconciler"]


class NamespacedSource:
    """A `CdrSource` whose CDRs' Uniqueid and Linkedid carry `prefix`."""

    def __init__(self, inner: CdrSource, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix
        self.description = inner.description

    async def read(self, since: datetime | None) -> CdrBatch:
        batch = await self.inner.read(since)
        cdrs = [namespace_event(cdr, self.prefix) for cdr in batch.cdrs]
        return dataclasses.replace(batch, cdrs=cdrs)


def site_cdr_source(site: PbxSite) -> CdrSource | None:
    """The PBX's own CDR store (`cdr_source`), read in its namespace; None: not set."""
    source = build_cdr_source(site.pbx.cdr_source, zoneinfo.ZoneInfo(site.pbx.cdr_timezone))
    if source is None or not site.namespaced:
        return source
    return NamespacedSource(source, site.prefix)


def site_reconciler(
    config: Config, site: PbxSite, pool: Any, alerts: AlertSink | None
) -> Reconciler | None:
    """The PBX's periodic reconciler (None: `reconcile_s = 0`): a legacy PBX's as it always
    was; one of several reads its own CDR store in its namespace and rebuilds its own calls."""
    if not site.namespaced:
        return build_reconciler(config.for_pbx(site), pool, alerts)
    if site.pbx.reconcile_s <= 0:
        return None
    return Reconciler(
        pool,
        site_devices(site),
        region=site.pbx.default_region,
        period_s=site.pbx.reconcile_s,
        source=site_cdr_source(site),
        max_call_s=float(site.pbx.max_call_s),
        alerts=alerts,
        scope=site.prefix,
    )
