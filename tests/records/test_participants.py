"""Who took part in a call is written as the tracker reports it, through the agent roster."""

from __future__ import annotations

from typing import Any

import asyncpg

from bridge.ami_replay import replay
from bridge.crm.roster import AgentRoster
from bridge.records.participants import ParticipantRecorder
from bridge.tracker import CallTracker
from tests.conftest import TRACES
from tests.crm.fixture_crm import load_trace_crm
from tests.pops.conftest import CONFIG, trace_events


async def test_the_rung_the_one_who_answered_and_a_transfer_target_are_remembered(
    pool: asyncpg.Pool[Any], roster: AgentRoster
) -> None:
    await load_trace_crm(pool)
    await roster.start()  # the agents were loaded after the roster started: read them again
    recorder = ParticipantRecorder(pool, roster.agent_id_of)
    vip, transfer = trace_events("vip-answered"), trace_events("blind-transfer")
    for event in [*vip, *transfer]:
        await recorder.on_event(event)
    await recorder.drain()

    async def rows(call_id: str) -> list[tuple[str, str]]:
        found = await pool.fetch(
            "SELECT agent_id, how FROM call_participants WHERE call_id = $1 ORDER BY 1, 2",
            call_id,
        )
        return [(r["agent_id"], r["how"]) for r in found]

    assert await rows(vip[0].call_id) == [("2001", "answered"), ("2001", "rung"), ("2002", "rung")]
    assert await rows(transfer[0].call_id) == [
        ("1001", "answered"),
        ("1001", "rung"),
        ("2001", "answered"),
        ("2001", "rung"),
        ("2001", "transferred"),
    ]


async def test_a_device_of_nobody_writes_nothing_and_a_write_failure_is_not_fatal(
    pool: asyncpg.Pool[Any], roster: AgentRoster
) -> None:
    recorder = ParticipantRecorder(pool, roster.agent_id_of)
    for event in trace_events("vip-answered"):  # no agents in the database
        await recorder.on_event(event)
    await recorder.drain()
    assert await pool.fetchval("SELECT count(*) FROM call_participants") == 0

    async def broken(rows: Any) -> None:
        raise OSError("database gone")

    failing = ParticipantRecorder(pool, lambda device: "someone")
    failing._rows._write = broken  # the batch writer logs and goes on
    for event in trace_events("vip-answered"):
        await failing.on_event(event)
    await failing.drain()
    await failing.stop()


async def test_an_agent_whose_dial_out_went_unanswered_is_on_its_call(
    pool: asyncpg.Pool[Any], roster: AgentRoster
) -> None:
    """It may file a disposition (no answer, try again) for the call it placed."""
    await load_trace_crm(pool)
    await roster.start()
    recorder = ParticipantRecorder(pool, roster.agent_id_of)
    tracker = CallTracker(CONFIG.device_regex, is_agent=lambda d: roster.agent_id_of(d) is not None)
    events = replay((TRACES / "dial-out-unanswered" / "ami.log").read_bytes(), tracker)
    for event in events:
        await recorder.on_event(event)
    await recorder.drain()
    found = await pool.fetch("SELECT agent_id, how FROM call_participants")
    assert [(r["agent_id"], r["how"]) for r in found] == [("1001", "rung")]
