"""Each PBX's AMI side: its device matcher, call tracker and AMI pipeline (`build_site`),
and how the parts that follow calls subscribe to it (`SiteLink`).

With a legacy single PBX this builds exactly what the bridge always had. With several
(`[[pbx]]`), the tracker namespaces what it is fed (`bridge.pbx.namespace`), and the raw
Cdrs kept for the record writer are namespaced the same way here, so every consumer sees
one PBX's identifiers under that PBX's prefix.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bridge.ami.pipeline import AmiPipeline
from bridge.config import PbxSite
from bridge.devices import DeviceMatcher, DevicePatterns
from bridge.models import CALL_EVENT_TYPES, CallEvent
from bridge.pbx.namespace import NamespacedTracker, namespace_event, site_devices
from bridge.pbx_events import CdrRecord
from bridge.tracker.tracker import CallTracker

__all__ = ["SiteLink", "build_site"]


@dataclass
class SiteLink:
    """One PBX's parts: `pipeline` is None with `[ami] enabled = false`."""

    site: PbxSite
    devices: DeviceMatcher  # the PBX's device pattern, qualified when namespaced
    tracker: CallTracker
    pipeline: AmiPipeline | None

    def observe_calls(self, callback: Callable[[list[CallEvent]], None]) -> None:
        """`callback` gets the tracker's call events inline, in PBX order."""
        if self.pipeline is not None:
            self.pipeline.events.observe(callback, CALL_EVENT_TYPES)

    def subscribe_calls(self, callback: Callable[..., Awaitable[None]], *, batch: bool) -> None:
        """A lossless subscriber of the call events: when it is full, the AMI read waits."""
        if self.pipeline is not None:
            self.pipeline.events.subscribe(callback, CALL_EVENT_TYPES, lossless=True, batch=batch)

    def subscribe_cdrs(self, callback: Callable[[list[Any]], Awaitable[None]]) -> None:
        """A lossless batch subscriber of the PBX's Cdrs, in the PBX's namespace."""
        if self.pipeline is None:
            return
        prefix = self.site.prefix

        async def namespaced(events: list[Any]) -> None:
            await callback([namespace_event(event, prefix) for event in events])

        target = namespaced if prefix else callback
        self.pipeline.events.subscribe(target, (CdrRecord,), lossless=True, batch=True)


def build_site(site: PbxSite, *, is_agent: Callable[[str], bool] | None) -> SiteLink:
    """The PBX's tracker and AMI pipeline (built, not started)."""
    if site.namespaced:
        devices = site_devices(site)
        tracker: CallTracker = NamespacedTracker(
            site, devices, max_call_s=site.pbx.max_call_s, is_agent=is_agent
        )
    else:
        devices = DevicePatterns.parse(site.pbx.device_pattern)
        tracker = CallTracker(devices, max_call_s=site.pbx.max_call_s, is_agent=is_agent)
    pbx = site.name if site.namespaced else ""  # its `pbx` label in the metrics
    pipeline = AmiPipeline.build(site.ami, tracker, pbx=pbx) if site.ami.enabled else None
    return SiteLink(site, devices, tracker, pipeline)
