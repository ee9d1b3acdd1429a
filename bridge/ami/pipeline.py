"""The AMI side of the bridge as one component: the link publishes the PBX's events on an
event bus, the tracker feed turns them into call events on the same bus, and the parts that
use them subscribe there (see `bridge.bus`).

Three parts, one order: started bus, feed, link; stopped link (nothing more comes in), feed
(the calls still held for Cdrs end, on the bus), bus (subscribers drain what they hold, the
record writer first of all). Any other order loses call ends at shutdown.
"""

from __future__ import annotations

from typing import Any

from bridge.ami.link import AmiLink
from bridge.bus import EventBus
from bridge.clock import WallClock, utc_now
from bridge.component import Health
from bridge.config import AmiConfig
from bridge.tracker.feed import TrackerFeed
from bridge.tracker.tracker import CallTracker

__all__ = ["AmiPipeline"]


class AmiPipeline:
    """Component `ami`: the link's health, with the number of calls the tracker follows."""

    name = "ami"

    def __init__(self, link: AmiLink, feed: TrackerFeed) -> None:
        if feed.events is not link.events:
            raise ValueError("the link and the tracker feed must share one event bus")
        self.link = link
        self.feed = feed
        self.events = link.events

    @classmethod
    def build(
        cls,
        config: AmiConfig,
        tracker: CallTracker,
        *,
        clock: WallClock = utc_now,
        tick_s: float = 1.0,
        subscriber_queue: int = 10_000,
        pbx: str = "",
        **link_options: Any,
    ) -> AmiPipeline:
        """A bus, a link publishing on it and a feed of `tracker` from it, sharing `clock`.
        `pbx` names the PBX in the feed's metrics ("" for a legacy single PBX);
        `link_options` go to `AmiLink` (timeouts, `rng`)."""
        events = EventBus(queue_size=subscriber_queue)
        link = AmiLink(config, events, clock=clock, **link_options)
        feed = TrackerFeed(tracker, events, clock=clock, tick_s=tick_s, pbx=pbx)
        return cls(link, feed)

    @property
    def tracker(self) -> CallTracker:
        return self.feed.tracker

    async def connected(self, sessions: int = 1) -> None:
        """Wait until the link has logged in and resynced `sessions` times and is up (the
        tracker has the listing by then: it is fed inline)."""
        await self.link.connected(sessions)

    async def start(self) -> None:
        await self.events.start()
        await self.feed.start()
        await self.link.start()

    async def stop(self) -> None:
        await self.link.stop()
        await self.feed.stop()
        await self.events.stop()

    def health(self) -> Health:
        health = self.link.health()
        detail = {**health.detail, "active_calls": self.tracker.active_calls}
        return Health(health.state, health.required, detail)
