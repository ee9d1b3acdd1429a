"""Call tracking: AMI events in, call events (ringing, answered, ...) out."""

from __future__ import annotations

from bridge.tracker.replay import ReplayClock, replay, replay_frames
from bridge.tracker.tracker import CallTracker, LiveCall, LiveLeg

__all__ = ["CallTracker", "LiveCall", "LiveLeg", "ReplayClock", "replay", "replay_frames"]
