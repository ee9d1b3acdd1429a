"""Each PBX's own parts, built from its `PbxSite`: device matcher, call tracker, AMI link,
queue control and reconciler (`build_pbx`), its ARI app (`build_pbx_ari`), and how its
link feeds the shared consumers (`wire_pbx`). The composition root calls these once per
PBX; with a legacy single PBX they build exactly what it always had.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bridge.agi.route import Router
from bridge.ami_pipeline import AmiPipeline
from bridge.ari import build_ari_app
from bridge.ari.app import AriApp
from bridge.config import Config, PbxSite
from bridge.devices import DeviceMatcher, DevicePatterns
from bridge.models import CALL_EVENT_TYPES, CallEvent, Decision, InboundCall
from bridge.pbx.cdrs import NamespacedSource
from bridge.pbx.namespace import NamespacedTracker, QualifiedDevices, namespace_event
from bridge.pbx_events import CdrRecord
from bridge.sync.periodic import Reconciler, build_reconciler
from bridge.sync.reconcile import AlertSink
from bridge.sync.sources import CdrSource, build_cdr_source
from bridge.tracker.tracker import CallTracker
from bridge.wallboard.ami import AmiQueues

__all__ = [
    "PbxParts",
    "SiteRouter",
    "build_pbx",
    "build_pbx_ari",
    "site_cdr_source",
    "site_devices",
    "wire_pbx",
]


@dataclass
class PbxParts:
    site: PbxSite
    devices: DeviceMatcher  # the PBX's device pattern, qualified when namespaced
    tracker: CallTracker
    link: AmiPipeline | None  # None: `[ami] enabled = false`
    queues: AmiQueues | None
    reconciler: Reconciler | None  # None: `reconcile_s = 0`


def site_devices(site: PbxSite) -> DeviceMatcher:
    """The PBX's `device_pattern`, its extensions qualified when it is one of several."""
    patterns = DevicePatterns.parse(site.pbx.device_pattern)
    return QualifiedDevices(patterns, site.prefix) if site.namespaced else patterns


def site_cdr_source(site: PbxSite) -> CdrSource | None:
    """The PBX's own CDR store (`cdr_source`), read in its namespace; None: not set."""
    source = build_cdr_source(site.pbx.cdr_source, zoneinfo.ZoneInfo(site.pbx.cdr_timezone))
    if source is None or not site.namespaced:
        return source
    return NamespacedSource(source, site.prefix)


def build_pbx(
    config: Config,
    site: PbxSite,
    *,
    pool: Any,
    is_agent: Callable[[str], bool] | None,
    alerts: AlertSink | None,
) -> PbxParts:
    patterns = DevicePatterns.parse(site.pbx.device_pattern)
    if not site.namespaced:
        tracker = CallTracker(patterns, max_call_s=site.pbx.max_call_s, is_agent=is_agent)
        link = AmiPipeline.build(site.ami, tracker) if site.ami.enabled else None
        queues = AmiQueues(link.link, patterns) if link is not None else None
        reconciler = build_reconciler(config.for_pbx(site), pool, alerts)
        return PbxParts(site, patterns, tracker, link, queues, reconciler)
    devices = site_devices(site)
    tracker = NamespacedTracker(site, devices, max_call_s=site.pbx.max_call_s, is_agent=is_agent)
    link = AmiPipeline.build(site.ami, tracker) if site.ami.enabled else None
    queues = AmiQueues(link.link, devices) if link is not None else None
    return PbxParts(site, devices, tracker, link, queues, _reconciler(site, devices, pool, alerts))


def _reconciler(
    site: PbxSite, devices: DeviceMatcher, pool: Any, alerts: AlertSink | None
) -> Reconciler | None:
    """A namespaced PBX's reconciler: its own CDR store in its namespace, its own calls."""
    if site.pbx.reconcile_s <= 0:
        return None
    return Reconciler(
        pool,
        devices,
        region=site.pbx.default_region,
        period_s=site.pbx.reconcile_s,
        source=site_cdr_source(site),
        max_call_s=float(site.pbx.max_call_s),
        alerts=alerts,
        scope=site.prefix,
    )


class SiteRouter:
    """The route service for one PBX's ARI app: decisions recorded in its namespace."""

    def __init__(self, router: Router, site: PbxSite) -> None:
        self._router = router
        self._site = site

    async def route(self, call: InboundCall) -> Decision:
        return await self._router.route(call)

    async def record(self, call: InboundCall, decision: Decision, recording: str | None) -> None:
        await self._router.record(namespace_event(call, self._site.prefix), decision, recording)


def build_pbx_ari(config: Config, site: PbxSite, router: Router) -> AriApp | None:
    return build_ari_app(config.for_pbx(site), SiteRouter(router, site))


def wire_pbx(
    parts: PbxParts,
    *,
    pops: Callable[[list[CallEvent]], None],
    board: Callable[[list[CallEvent]], None],
    participants: Callable[[CallEvent], Awaitable[None]],
    records: Callable[[list[Any]], Awaitable[None]],
) -> None:
    """Feed one PBX's link into the shared consumers: the pop hub (inline, in PBX order),
    the wallboard, then the lossless participants and call records; Cdrs go to the records
    too (kept for `sync run`), in the PBX's namespace like everything else."""
    if parts.link is None:
        return
    events = parts.link.events
    events.observe(pops, CALL_EVENT_TYPES)
    events.observe(board, CALL_EVENT_TYPES)
    # Who talked and the records are lossless: a full subscriber pauses the AMI read.
    events.subscribe(participants, CALL_EVENT_TYPES, lossless=True)
    events.subscribe(records, CALL_EVENT_TYPES, lossless=True, batch=True)
    prefix = parts.site.prefix

    async def cdrs(events: list[Any]) -> None:
        await records([namespace_event(event, prefix) for event in events])

    events.subscribe(cdrs if prefix else records, (CdrRecord,), lossless=True, batch=True)
