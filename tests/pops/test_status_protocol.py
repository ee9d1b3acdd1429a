"""The desk's `status` message and the wallboard's `queue.stats`, as pure protocol."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bridge.pops.protocol import (
    CLOSE_MALFORMED,
    PopProtocolError,
    Status,
    parse_client_message,
    queue_stats_message,
)
from bridge.wallboard.stats import QueueStats


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"type":"status","paused":true,"reason":"lunch"}', Status(True, "lunch")),
        ('{"type":"status","paused":true}', Status(True, "")),
        ('{"type":"status","paused":true,"reason":null}', Status(True, "")),
        ('{"type":"status","paused":true,"reason":"  break "}', Status(True, "break")),
        ('{"type":"status","paused":false,"reason":"ignored"}', Status(False, "")),
        ('{"type":"status","paused":true,"reason":"<b>café</b>"}', Status(True, "<b>café</b>")),
    ],
)
def test_a_status_message_pauses_or_resumes_with_a_one_line_reason(
    frame: str, expected: Status
) -> None:
    assert parse_client_message(frame) == expected


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"status"}',
        '{"type":"status","paused":"yes"}',
        '{"type":"status","paused":1}',
        '{"type":"status","paused":true,"reason":"a\\r\\nAction: Originate"}',
        '{"type":"status","paused":true,"reason":"nul\\u0000"}',
        '{"type":"status","paused":true,"reason":' + '"' + "x" * 81 + '"}',
        '{"type":"status","paused":true,"reason":["lunch"]}',
    ],
)
def test_a_malformed_status_closes_with_4002(frame: str) -> None:
    with pytest.raises(PopProtocolError) as caught:
        parse_client_message(frame)
    assert caught.value.code == CLOSE_MALFORMED


def test_queue_stats_carry_the_contract_fields() -> None:
    stats = QueueStats(
        queue="senior",
        waiting=2,
        longest_wait_s=41,
        agents={"available": 1, "ringing": 1, "talking": 2, "paused": 1},
        answered=7,
        abandoned=1,
        sla_pct=75.0,
    )
    message = queue_stats_message(stats, datetime(2026, 5, 1, 9, 30, tzinfo=UTC))
    assert message == {
        "type": "queue.stats",
        "at": "2026-05-01T09:30:00+00:00",
        "queue": "senior",
        "waiting": 2,
        "longest_wait_s": 41,
        "agents": {"available": 1, "ringing": 1, "talking": 2, "paused": 1},
        "answered": 7,
        "abandoned": 1,
        "sla_pct": 75.0,
        "members": [],
        "calls": [],
    }
