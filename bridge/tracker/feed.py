"""The tracker on the event bus: PBX events in, call events out, in PBX order.

`TrackerFeed` observes the PBX events published on an `EventBus` (inline, so the tracker sees
them in the order the PBX sent them) and publishes the call events each one causes at once,
before the next PBX event: the bus's observers (the pop hub, the wallboard) therefore read the
tracker's state as of those events. A `PbxSnapshot` (the listings at a reconnect) resyncs the
tracker. Every `tick_s` it releases the calls whose Cdrs did not come (`CallTracker.tick`);
`stop()` ends the calls still held for them, so stop it after the producer and before the bus.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bridge.bus import EventBus
from bridge.clock import WallClock, utc_now
from bridge.component import Health
from bridge.models import CallEvent
from bridge.pbx_events import PBX_EVENT_TYPES, PbxSnapshot
from bridge.tasks import cancel_and_wait
from bridge.tracker import metrics
from bridge.tracker.tracker import CallTracker

__all__ = ["TrackerFeed"]

log = logging.getLogger(__name__)


class TrackerFeed:
    """Component `tracker`: feeds `tracker` from `events` and publishes its call events there."""

    name = "tracker"

    def __init__(
        self,
        tracker: CallTracker,
        events: EventBus,
        *,
        clock: WallClock = utc_now,
        tick_s: float = 1.0,
        pbx: str = "",
    ) -> None:
        """`pbx`: the `[[pbx]]` name the tracker's PBX has (its `active_calls` series), ""
        for a legacy single PBX."""
        self.tracker = tracker
        self._active_calls = metrics.ACTIVE_CALLS.labels(pbx)
        self.events = events
        self._clock = clock
        self._tick_s = tick_s
        self._tick_task: asyncio.Task[None] | None = None
        events.observe(self._on_pbx_events, (*PBX_EVENT_TYPES, PbxSnapshot))

    def _on_pbx_events(self, batch: list[Any]) -> None:
        for event in batch:  # one publish per PBX event: observers see the state after each
            if isinstance(event, PbxSnapshot):
                self._publish(
                    self.tracker.resync(
                        event.channels,
                        event.queue_entries,
                        now=event.at,
                        complete=event.complete,
                    )
                )
                log.info("tracker resynced: %d calls tracked", self.tracker.active_calls)
            else:
                self._publish(self.tracker.feed(event))

    def _publish(self, calls: list[CallEvent]) -> None:
        self._active_calls.set(self.tracker.active_calls)
        for event in calls:
            metrics.CALL_EVENTS.labels(type(event).__name__).inc()
        self.events.publish(calls)

    async def start(self) -> None:
        if self._tick_task is None:
            self._tick_task = asyncio.create_task(self._tick_loop(), name="tracker-tick")

    async def stop(self) -> None:
        """Stop ticking and end the calls held for Cdrs (published on the bus)."""
        if self._tick_task is None:
            return
        await cancel_and_wait(self._tick_task)
        self._tick_task = None
        self._publish(self.tracker.flush())

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            self._publish(self.tracker.tick(self._clock()))

    def health(self) -> Health:
        return Health(
            state="up" if self._tick_task is not None else "down",
            required=False,
            detail={"active_calls": self.tracker.active_calls},
        )
