from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from bridge.crm.agents import Agent
from bridge.errors import ValidationError
from bridge.pops.disposition import MAX_NOTES, NotYourCall, save_disposition
from bridge.records.participants import record_participant
from tests.crm.fixture_crm import ALICE, load_trace_crm

A1001 = Agent("1001", "Agent 1001", "agent", "1001")
A1002 = Agent("1002", "Agent 1002", "agent", "1002")
BOSS = Agent("boss", "Boss", "supervisor", "9000")


@pytest.fixture
async def crm(pool: asyncpg.Pool[Any]) -> asyncpg.Pool[Any]:
    await load_trace_crm(pool)
    await record_participant(pool, "1700000000.1", "1001", "rung")
    return pool


async def test_a_rung_agent_files_before_the_call_record_exists(crm) -> None:
    await save_disposition(crm, "1700000000.1", A1001, "follow_up", "call back\tMonday")
    row = await crm.fetchrow("SELECT * FROM call_records WHERE call_id = '1700000000.1'")
    assert (row["disposition"], row["notes"]) == ("follow_up", "call back\tMonday")


async def test_filing_after_the_record_keeps_its_fields_and_updates_history(crm) -> None:
    await crm.execute(
        "INSERT INTO call_records (call_id, caller, outcome, agents) VALUES"
        " ('1700000000.1', '+15551230001', 'answered', '[{\"agent\": \"1001\"}]')"
    )
    await crm.execute(
        "INSERT INTO service_history (customer_id, call_id, summary) VALUES ($1, $2, 'call')",
        ALICE,
        "1700000000.1",
    )
    await save_disposition(crm, "1700000000.1", A1001, "complaint", "angry")
    await save_disposition(crm, "1700000000.1", A1001, "resolved", "calmed down")
    row = await crm.fetchrow("SELECT * FROM call_records WHERE call_id = '1700000000.1'")
    assert (row["caller"], row["outcome"]) == ("+15551230001", "answered")
    assert (row["disposition"], row["notes"]) == ("resolved", "calmed down")
    hist = await crm.fetchrow("SELECT * FROM service_history WHERE call_id = '1700000000.1'")
    assert (hist["disposition"], hist["notes"]) == ("resolved", "calmed down")


async def test_an_agent_listed_in_the_call_record_may_file(crm) -> None:
    await crm.execute(
        "INSERT INTO call_records (call_id, agents) VALUES ('c-9', '[{\"agent\": \"1002\"}]')"
    )
    await save_disposition(crm, "c-9", A1002, "resolved", "")


async def test_another_agent_may_not_file_but_a_supervisor_may(crm) -> None:
    with pytest.raises(NotYourCall):
        await save_disposition(crm, "1700000000.1", A1002, "resolved", "")
    assert await crm.fetchval("SELECT count(*) FROM call_records") == 0
    await save_disposition(crm, "1700000000.1", BOSS, "resolved", "")


@pytest.mark.parametrize(
    ("call_id", "disposition", "notes", "field"),
    [
        ("1700000000.1", "great", "", "disposition"),
        ("1700000000.1", None, "", "disposition"),
        ("1700000000.1", ["resolved"], "", "disposition"),
        ("1700000000.1", "resolved", 42, "notes"),
        ("1700000000.1", "resolved", "x" * (MAX_NOTES + 1), "notes"),
        ("x'; DROP TABLE call_records;--", "resolved", "", "call_id"),
        ("", "resolved", "", "call_id"),
        ("a\r\nb", "resolved", "", "call_id"),
    ],
)
async def test_bad_input_names_the_field(crm, call_id, disposition, notes, field) -> None:
    with pytest.raises(ValidationError) as err:
        await save_disposition(crm, call_id, A1001, disposition, notes)
    assert err.value.field == field


async def test_control_characters_are_stripped_from_notes(crm) -> None:
    await save_disposition(crm, "1700000000.1", A1001, "resolved", "a\x00b\x1b[31mc\r\nd\u2028")
    notes = await crm.fetchval("SELECT notes FROM call_records")
    assert notes == "ab[31mc\nd"
