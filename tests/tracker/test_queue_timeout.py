"""A queue timeout is `unanswered`, a caller hanging up in the queue is `abandoned`.

Asterisk sends QueueCallerAbandon for both (a real Asterisk 22 showed it for a 30 s
Queue() timeout); only a caller who hangs up sends HangupRequest on the queued channel
first. The recorded `abandoned` trace has that request; the same bytes without it are what a
timeout looks like on the wire.
"""

from __future__ import annotations

import re

from bridge.ami_replay import replay
from bridge.config import DEFAULT_DEVICE_PATTERN
from bridge.models import CallEnded, CallRetracted
from bridge.tracker import CallTracker
from tests.conftest import TRACES

ABANDONED = (TRACES / "abandoned" / "ami.log").read_bytes()
CALLER_HANGUP_REQUEST = b"Event: HangupRequest\r\n"


def _without_caller_hangup_request(data: bytes) -> bytes:
    frames = data.split(b"\r\n\r\n")
    kept = [
        f
        for f in frames
        if not (f.startswith(CALLER_HANGUP_REQUEST) and b"@inbound-" in f and b";2\r\n" in f)
    ]
    assert len(kept) == len(frames) - 1, "the trace has one HangupRequest on the caller"
    return b"\r\n\r\n".join(kept)


def _ended(data: bytes) -> tuple[CallEnded, list[CallRetracted]]:
    events = replay(data, CallTracker(re.compile(DEFAULT_DEVICE_PATTERN)))
    ended = [e for e in events if isinstance(e, CallEnded)]
    assert len(ended) == 1
    return ended[0], [e for e in events if isinstance(e, CallRetracted)]


def test_a_caller_who_hangs_up_in_the_queue_abandoned_the_call() -> None:
    ended, retracted = _ended(ABANDONED)
    assert ended.summary.outcome == "abandoned"
    assert [r.reason for r in retracted] == ["caller_gone"]


def test_a_queue_that_times_out_with_the_caller_on_the_line_left_it_unanswered() -> None:
    ended, _ = _ended(_without_caller_hangup_request(ABANDONED))
    assert ended.summary.outcome == "unanswered"
    assert ended.summary.agents == () and ended.summary.talk_s == 0
