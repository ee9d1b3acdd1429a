"""A bridge (re)started while a queue call rings or talks: it learns the call from the
`CoreShowChannels`/`QueueStatus` a real Asterisk 22 listed at that moment, then follows the
rest of the recorded call (tests/fixtures/asterisk-traces/restart, recorded by the lab: the
listings' logins show in the call's stream as `SuccessfulAuth`, which is where we cut it)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.ami.decode import decode_event
from bridge.ami.protocol import AmiParser, Frame
from bridge.ami_replay import ReplayClock, replay_frames
from bridge.config import DEFAULT_DEVICE_PATTERN
from bridge.models import CallEnded, CallEvent
from bridge.pbx_events import ChannelListed, QueueEntryListed
from bridge.tracker import CallTracker
from tests.conftest import TRACES
from tests.tracker.test_trace_replay import describe

RESTART = TRACES / "restart"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
BOB = ("+15551230002", "Bob")
ALICE = ("+15551230001", "Alice")
SUPPORT, SENIOR = "1796191627.0", "1796191662.4"


def frames(path: Path) -> list[Frame]:
    return AmiParser().feed(path.read_bytes())


def restart_at(folder: str, moment: str) -> list[CallEvent]:
    """Resync a fresh tracker from the listings taken at `moment`, then feed what followed."""
    where = RESTART / folder
    listed = [decode_event(f, NOW) for f in frames(where / f"coreshowchannels-{moment}.ami.log")]
    queued = [decode_event(f, NOW) for f in frames(where / f"queuestatus-{moment}.ami.log")]
    tracker = CallTracker(re.compile(DEFAULT_DEVICE_PATTERN))
    out = tracker.resync(
        [c for c in listed if isinstance(c, ChannelListed)],
        [q for q in queued if isinstance(q, QueueEntryListed)],
        now=NOW,
    )
    call = frames(where / "call-events.ami.log")
    logins = [i for i, f in enumerate(call) if f.event == "SuccessfulAuth"]
    # Two logins per snapshot (CoreShowChannels, QueueStatus): ringing first, then talking.
    cut = logins[1 if moment == "ringing" else 3] + 1
    clock = ReplayClock(start=NOW + timedelta(seconds=1))
    return out + replay_frames(call[cut:], tracker, clock)


EXPECTED: dict[tuple[str, str], list[tuple[Any, ...]]] = {
    (".", "ringing"): [
        ("ringing", SUPPORT, "1001", *BOB, "support"),
        ("answered", SUPPORT, "1001"),
        ("ended", SUPPORT, "answered", "support", BOB[0], 21, (("1001", 21),), None),
    ],
    (".", "talking"): [
        ("ringing", SUPPORT, "1001", *BOB, "support"),
        ("answered", SUPPORT, "1001"),
        ("ended", SUPPORT, "answered", "support", BOB[0], 21, (("1001", 21),), None),
    ],
    ("senior-ringall", "ringing"): [
        ("ringing", SENIOR, "2001", *ALICE, "senior"),
        ("ringing", SENIOR, "2002", *ALICE, "senior"),
        ("answered", SENIOR, "2001"),
        ("retracted", SENIOR, "2002", "answered_elsewhere"),
        ("ended", SENIOR, "answered", "senior", ALICE[0], 20, (("2001", 20),), None),
    ],
    ("senior-ringall", "talking"): [
        ("ringing", SENIOR, "2001", *ALICE, "senior"),
        ("answered", SENIOR, "2001"),
        ("ended", SENIOR, "answered", "senior", ALICE[0], 20, (("2001", 20),), None),
    ],
}


@pytest.mark.parametrize(("folder", "moment"), list(EXPECTED))
def test_call_picked_up_after_a_restart_is_recorded_answered(folder: str, moment: str) -> None:
    events = restart_at(folder, moment)
    assert describe(events) == EXPECTED[(folder, moment)]
    (ended,) = [e for e in events if isinstance(e, CallEnded)]
    inferred = set(ended.summary.inferred)
    assert "started_at" in inferred  # from the listing's Duration, not seen
    # Answered before the restart: when is inferred; answered after it: seen live.
    assert ("answered_at" in inferred) == (moment == "talking")


@pytest.mark.parametrize("folder", [".", "senior-ringall"])
def test_a_call_found_talking_was_answered_before_the_restart_not_at_it(folder: str) -> None:
    """Its answer time is the agent's end less Asterisk's own talk figure, not the moment
    the listing showed it up (live on the lab: a restart 12 s into a call)."""
    (ended,) = [e for e in restart_at(folder, "talking") if isinstance(e, CallEnded)]
    s = ended.summary
    (agent,) = s.agents
    assert s.started_at <= agent.answered_at == s.answered_at < NOW
    assert agent.answered_at + timedelta(seconds=agent.talk_s) > NOW
    assert "answered_at" in s.inferred
