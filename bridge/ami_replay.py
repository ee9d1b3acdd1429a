"""Drive a tracker from recorded AMI bytes, exactly as the live link does from a socket.

Beside the AMI package and the tracker, not in either: it is the one place (with the live
`bridge.ami.pipeline`) where AMI decoding and call tracking meet, so neither imports the other.

Traces carry no timestamps, so replay stamps events with a synthetic clock: a fixed start and
a fixed step per frame. Durations computed from it are therefore not meaningful in replay;
talk times come from Asterisk's own figures (`AgentComplete`, `Cdr`) either way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bridge.ami.decode import decode_event
from bridge.ami.protocol import AmiParser, Frame
from bridge.models import CallEvent
from bridge.tracker import CallTracker

__all__ = ["ReplayClock", "replay", "replay_frames"]


@dataclass
class ReplayClock:
    """A `bridge.clock.WallClock` for replay: `start`, then one `step` later at each call."""

    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    step: timedelta = timedelta(milliseconds=10)
    ticks: int = 0

    def __call__(self) -> datetime:
        now = self.start + self.step * self.ticks
        self.ticks += 1
        return now


def replay_frames(
    frames: Iterable[Frame],
    tracker: CallTracker,
    clock: ReplayClock | None = None,
    *,
    flush: bool = True,
) -> list[CallEvent]:
    clock = clock or ReplayClock()
    out: list[CallEvent] = []
    for frame in frames:
        event = decode_event(frame, clock())
        if event is not None:
            out.extend(tracker.feed(event))
    if flush:
        out.extend(tracker.flush())
    return out


def replay(
    data: bytes,
    tracker: CallTracker,
    clock: ReplayClock | None = None,
    *,
    flush: bool = True,
) -> list[CallEvent]:
    """Parse an `ami.log` byte stream and feed every frame to `tracker`."""
    return replay_frames(AmiParser().feed(data), tracker, clock, flush=flush)
