"""Who may file a call's disposition, where it goes, and that refusals write nothing."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from bridge.crm.agents import Agent
from bridge.errors import ValidationError
from bridge.models import AgentLeg
from bridge.pops.disposition import MAX_NOTES, CallNotFound, NotYourCall, save_disposition
from bridge.records.participants import record_participant
from bridge.records.store import load_record, write_ended
from tests.crm.fixture_crm import ALICE, load_trace_crm
from tests.crm.test_directory import eventually
from tests.records.factory import make_ended

A1001 = Agent("1001", "Agent 1001", "agent", "1001")
A1002 = Agent("1002", "Agent 1002", "agent", "1002")
A2001 = Agent("2001", "Agent 2001", "agent", "2001")
BOSS = Agent("boss", "Boss", "supervisor", "9000")
ROOT = Agent("root", "Root", "admin", "9001")
LIVE = "1700000000.1"


@pytest.fixture
async def crm(pool: asyncpg.Pool[Any]) -> asyncpg.Pool[Any]:
    """A live call (no record yet): 1001 and 1002 were rung, 1001 answered."""
    await load_trace_crm(pool)
    await record_participant(pool, LIVE, "1001", "rung")
    await record_participant(pool, LIVE, "1002", "rung")
    await record_participant(pool, LIVE, "1001", "answered")
    return pool


async def _counts(pool: asyncpg.Pool[Any]) -> tuple[int, int, int]:
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM call_records) AS r,"
        " (SELECT count(*) FROM call_dispositions) AS d, (SELECT count(*) FROM audit_log) AS a"
    )
    return row["r"], row["d"], row["a"]


async def _write_record(pool: asyncpg.Pool[Any], call_id: str, devices: tuple[str, ...]) -> None:
    ended = make_ended(call_id, caller="+15551230001", device=devices[0])
    legs = tuple(
        AgentLeg(d, ended.summary.started_at + timedelta(seconds=5 + 10 * n), 10)
        for n, d in enumerate(devices)
    )
    summary = dataclasses.replace(ended.summary, agents=legs)
    async with pool.acquire() as conn, conn.transaction():
        assert await write_ended(conn, dataclasses.replace(ended, summary=summary), region="US")


async def _record(pool: asyncpg.Pool[Any], call_id: str) -> dict[str, Any]:
    async with pool.acquire() as conn:
        record = await load_record(conn, call_id)
    assert record is not None
    return record


async def test_a_live_call_keeps_the_filing_until_the_record_takes_it(crm) -> None:
    filed = await save_disposition(crm, LIVE, A1001, "follow_up", "call back\tMonday")
    assert (filed.agent, filed.filed_by) == ("1001", "1001")
    assert await _counts(crm) == (0, 1, 1), "no record for a live call; the filing is audited"
    await _write_record(crm, LIVE, ("1001",))
    record = await _record(crm, LIVE)
    assert (record["disposition"], record["notes"]) == ("follow_up", "call back\tMonday")
    assert record["agents"][0]["disposition"] == "follow_up"
    assert record["agents"][0]["notes"] == "call back\tMonday"


async def test_each_agent_files_its_own_part_and_the_record_shows_the_last_one(crm) -> None:
    await crm.execute(
        "INSERT INTO service_history (customer_id, call_id, summary) VALUES ($1, $2, 'call')",
        ALICE,
        LIVE,
    )
    await record_participant(crm, LIVE, "2001", "transferred")
    await _write_record(crm, LIVE, ("1001", "2001"))
    await save_disposition(crm, LIVE, A2001, "complaint", "angry")
    await save_disposition(crm, LIVE, A1001, "resolved", "sent on to 2001")
    record = await _record(crm, LIVE)
    assert [(a["agent"], a["disposition"], a["notes"]) for a in record["agents"]] == [
        ("1001", "resolved", "sent on to 2001"),
        ("2001", "complaint", "angry"),
    ]
    assert (record["disposition"], record["notes"]) == ("resolved", "sent on to 2001")
    assert (record["caller"], record["outcome"]) == ("+15551230001", "answered")
    hist = await crm.fetchrow("SELECT * FROM service_history WHERE call_id = $1", LIVE)
    assert (hist["disposition"], hist["notes"]) == ("resolved", "sent on to 2001")
    # the record writer runs again (at-least-once delivery): the parts stay
    await _write_record(crm, LIVE, ("1001", "2001"))
    again = await _record(crm, LIVE)
    assert again["agents"] == record["agents"] and again["disposition"] == "resolved"


async def test_an_agent_listed_in_the_call_record_may_file(crm) -> None:
    await crm.execute(
        "INSERT INTO call_records (call_id, agents) VALUES ('c-9', '[{\"agent\": \"1002\"}]')"
    )
    await save_disposition(crm, "c-9", A1002, "resolved", "")
    record = await _record(crm, "c-9")
    assert record["agents"] == [{"agent": "1002", "disposition": "resolved", "notes": ""}]


async def test_an_agent_only_rung_is_refused_and_nothing_is_written(crm) -> None:
    with pytest.raises(NotYourCall):
        await save_disposition(crm, LIVE, A1002, "resolved", "")
    assert await _counts(crm) == (0, 0, 0)


async def test_an_agent_not_involved_is_refused(crm) -> None:
    with pytest.raises(NotYourCall):
        await save_disposition(crm, LIVE, A2001, "resolved", "")
    await crm.execute(
        "INSERT INTO route_decisions (uniqueid, linkedid, queue, rule) VALUES"
        " ('9.1', '9.1', 'support', 'default')"
    )
    with pytest.raises(NotYourCall):  # a routed call nobody answered yet
        await save_disposition(crm, "9.1", A1001, "resolved", "")
    assert await _counts(crm) == (0, 0, 0)


async def test_an_agent_naming_another_agents_part_is_refused(crm) -> None:
    await record_participant(crm, LIVE, "1002", "transferred")
    with pytest.raises(NotYourCall):
        await save_disposition(crm, LIVE, A1001, "resolved", "", agent="1002")
    assert await _counts(crm) == (0, 0, 0)
    filed = await save_disposition(crm, LIVE, A1001, "resolved", "", agent="1001")
    assert filed.agent == "1001"


@pytest.mark.parametrize("who", [A1001, BOSS, ROOT])
async def test_a_call_that_does_not_exist_is_not_found_for_anyone(crm, who) -> None:
    with pytest.raises(CallNotFound):
        await save_disposition(crm, "1799999999.9", who, "resolved", "x")
    assert await _counts(crm) == (0, 0, 0)


async def test_a_supervisor_amends_the_last_talker_and_it_is_audited(crm) -> None:
    await record_participant(crm, LIVE, "2001", "transferred")
    await _write_record(crm, LIVE, ("1001", "2001"))
    await save_disposition(crm, LIVE, A2001, "complaint", "angry")
    filed = await save_disposition(crm, LIVE, BOSS, "resolved", "refund agreed")
    assert (filed.agent, filed.filed_by) == ("2001", "boss")
    record = await _record(crm, LIVE)
    assert record["agents"][1]["disposition"] == "resolved"
    assert record["agents"][0]["disposition"] is None
    assert (record["disposition"], record["notes"]) == ("resolved", "refund agreed")
    rows = await crm.fetch("SELECT * FROM audit_log ORDER BY id")
    assert [r["action"] for r in rows] == ["disposition.file", "disposition.amend"]
    assert (rows[0]["actor"], rows[0]["after"]["disposition"]) == ("2001", "complaint")
    entry = rows[1]
    assert (entry["actor"], entry["action"], entry["target_type"], entry["target_id"]) == (
        "boss",
        "disposition.amend",
        "call",
        LIVE,
    )
    assert entry["before"] == {
        "agent": "2001",
        "disposition": "complaint",
        "notes": "angry",
        "filed_by": "2001",
    }
    assert entry["after"]["disposition"] == "resolved" and entry["after"]["filed_by"] == "boss"


async def test_an_admin_amends_a_named_agents_part_of_a_live_call(crm) -> None:
    filed = await save_disposition(crm, LIVE, ROOT, "follow_up", "", agent="1001")
    assert filed.agent == "1001"
    assert await _counts(crm) == (0, 1, 1)


async def test_a_supervisor_naming_someone_who_did_not_talk_is_400(crm) -> None:
    for agent in ("1002", "nobody"):
        with pytest.raises(ValidationError) as err:
            await save_disposition(crm, LIVE, BOSS, "resolved", "", agent=agent)
        assert err.value.field == "agent"
    assert await _counts(crm) == (0, 0, 0)


@pytest.mark.parametrize(
    ("call_id", "disposition", "notes", "agent", "field"),
    [
        (LIVE, "great", "", None, "disposition"),
        (LIVE, None, "", None, "disposition"),
        (LIVE, ["resolved"], "", None, "disposition"),
        (LIVE, "resolved", 42, None, "notes"),
        (LIVE, "resolved", "x" * (MAX_NOTES + 1), None, "notes"),
        (LIVE, "resolved", "", 7, "agent"),
        (LIVE, "resolved", "", "a\r\nb", "agent"),
        (LIVE, "resolved", "", "x" * 65, "agent"),
        ("x'; DROP TABLE call_records;--", "resolved", "", None, "call_id"),
        ("", "resolved", "", None, "call_id"),
        ("a\r\nb", "resolved", "", None, "call_id"),
        ("a\x00b", "resolved", "", None, "call_id"),
    ],
)
async def test_bad_input_names_the_field(crm, call_id, disposition, notes, agent, field) -> None:
    with pytest.raises(ValidationError) as err:
        await save_disposition(crm, call_id, A1001, disposition, notes, agent=agent)
    assert err.value.field == field
    assert await _counts(crm) == (0, 0, 0)


async def test_control_characters_are_stripped_from_notes(crm) -> None:
    await save_disposition(crm, LIVE, A1001, "resolved", "a\x00b\x1b[31mc\r\nd\u2028")
    notes = await crm.fetchval("SELECT notes FROM call_dispositions")
    assert notes == "ab[31mc\nd"


async def test_a_filing_racing_the_record_writer_is_not_lost(crm) -> None:
    """The record is being written (its transaction still open) when the agent files: the
    filing waits for the call's lock, then lands in the record it could not yet see."""
    ended = make_ended(LIVE, caller="+15551230001", device="1001")
    async with crm.acquire() as conn:
        writing = conn.transaction()
        await writing.start()
        assert await write_ended(conn, ended, region="US")
        filing = asyncio.ensure_future(save_disposition(crm, LIVE, A1001, "complaint", "late"))

        async def waits_for_the_lock() -> bool:
            return bool(
                await crm.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    " AND database = (SELECT oid FROM pg_database"
                    "                  WHERE datname = current_database())"
                )
            )

        await eventually(waits_for_the_lock)
        assert not filing.done()
        await writing.commit()
    await filing
    record = await _record(crm, LIVE)
    assert (record["disposition"], record["notes"]) == ("complaint", "late")
    assert record["agents"][0]["disposition"] == "complaint"
