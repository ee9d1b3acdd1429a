"""Attended transfers recorded on the lab Asterisk 22 during the live check
(tests/fixtures/lab-live/README.md): each agent once, the consulted one rung with
`transfer_from`, its consultation answer not taken for the customer's."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bridge.ami_replay import replay
from bridge.config import DEFAULT_DEVICE_PATTERN
from bridge.models import CallEnded
from bridge.tracker import CallTracker
from tests.tracker.test_trace_replay import describe

LAB = Path(__file__).parents[1] / "fixtures" / "lab-live"


def _events(scenario: str) -> list[Any]:
    data = (LAB / scenario / "ami.log").read_bytes()
    return replay(data, CallTracker(re.compile(DEFAULT_DEVICE_PATTERN)))


@pytest.mark.parametrize(
    ("scenario", "call_id", "caller", "first"),
    [
        (
            "attended-transfer-unoptimised",
            "1796194305.200",
            ("+15559990004", "Tom Transfer"),
            "1001",
        ),
        (
            "attended-transfer-early-leave",
            "1796194728.258",
            ("+15559990014", "Olga Unoptimised"),
            "1002",
        ),
    ],
)
def test_an_attended_transfer_lists_each_agent_once(
    scenario: str, call_id: str, caller: tuple[str, str], first: str
) -> None:
    events = _events(scenario)
    assert describe(events)[:-1] == [
        ("ringing", call_id, first, *caller, "support"),
        ("answered", call_id, first),
        ("ringing", call_id, "2001", *caller, "support", ("from", first)),
        ("transferred", call_id, first, "2001"),
        ("answered", call_id, "2001"),
    ]
    (ended,) = [e for e in events if isinstance(e, CallEnded)]
    # Replay has no clock: the target's talk (from the completion) is not meaningful here.
    assert [a.device for a in ended.summary.agents] == [first, "2001"]
