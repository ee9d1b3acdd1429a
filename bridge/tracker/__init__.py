"""Call tracking: PBX events in, call events (ringing, answered, ...) out."""

from __future__ import annotations

from bridge.tracker.feed import TrackerFeed
from bridge.tracker.replay import ReplayClock, replay, replay_frames
from bridge.tracker.tracker import CallTracker, LiveCall, LiveLeg

__all__ = [
    "CallTracker",
    "LiveCall",
    "LiveLeg",
    "ReplayClock",
    "TrackerFeed",
    "replay",
    "replay_frames",
]
