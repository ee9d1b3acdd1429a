"""Several PBXs read as one: their live calls (for the pops and the wallboard); their queue
members are read as one by `bridge.wallboard.pbx_queues`.

Call ids and devices are namespaced per PBX (`bridge.pbx.namespace`), so the parts never
collide and each question goes to the one PBX that can answer it.
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.models import CallEvent
from bridge.tracker.tracker import CallTracker, LiveCall

__all__ = ["PbxCalls"]


class PbxCalls:
    """The live calls of every PBX's tracker (the hub's `LiveCalls`, the board's snapshot)."""

    def __init__(self, trackers: Sequence[CallTracker]) -> None:
        self._trackers = tuple(trackers)

    def view(self, call_id: str) -> LiveCall | None:
        for tracker in self._trackers:
            found = tracker.view(call_id)
            if found is not None:
                return found
        return None

    def catch_up(self, device: str) -> list[CallEvent]:
        return [event for tracker in self._trackers for event in tracker.catch_up(device)]

    def snapshot(self) -> list[LiveCall]:
        return [call for tracker in self._trackers for call in tracker.snapshot()]

    @property
    def active_calls(self) -> int:
        return sum(tracker.active_calls for tracker in self._trackers)
