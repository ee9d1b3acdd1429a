"""Call tracking: PBX events in, call events (ringing, answered, ...) out.

Pure of the AMI: the tracker reads `bridge.pbx_events`; replaying recorded AMI bytes through
it is `bridge.ami_replay`."""

from __future__ import annotations

from bridge.tracker.feed import TrackerFeed
from bridge.tracker.tracker import CallTracker, LiveCall, LiveLeg

__all__ = ["CallTracker", "LiveCall", "LiveLeg", "TrackerFeed"]
