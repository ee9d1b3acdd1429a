"""Every recorded trace, parsed (ami.log -> tracker -> writer), lands in call_records exactly
as its scenario.json says: queue, customer, agents in order, talk time, outcome, recording."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from bridge.records import RecordWriter
from tests.conftest import TRACES
from tests.records.helpers import (
    AGENTS,
    AMI_SCENARIOS,
    CUSTOMERS,
    ended_events,
    seed_crm,
    seed_decisions,
)


@pytest.mark.parametrize("scenario", AMI_SCENARIOS)
async def test_trace_lands_in_call_records_as_the_scenario_says(
    scenario: str, pool: asyncpg.Pool[Any], writer: RecordWriter
) -> None:
    facts = json.loads((TRACES / scenario / "scenario.json").read_text())
    async with pool.acquire() as conn:
        await seed_crm(conn)
        await seed_decisions(conn, scenario)
    ended = ended_events(scenario)
    for event in ended:
        await writer.submit(event)
    await writer.wait_idle()

    rows = await pool.fetch("SELECT * FROM call_records ORDER BY call_id")
    callers = facts.get("callers") or [facts["caller"]]
    assert sorted(r["caller"] for r in rows) == sorted(callers)
    assert {r["call_id"] for r in rows} == {e.call_id for e in ended}
    for row in rows:
        event = next(e for e in ended if e.call_id == row["call_id"])
        assert row["queue"] == facts["queue"]
        assert row["ended_at"] is not None and row["started_at"] <= row["ended_at"]
        if "answered" in facts:
            assert (row["outcome"] == "answered") == facts["answered"]
            if not facts["answered"]:
                assert row["outcome"] == "abandoned"
                assert row["agents"] == []
        if "outcome" in facts:
            assert row["outcome"] == facts["outcome"]
        assert row["direction"] == facts.get("direction", "inbound")
        if "talk_s" in facts:
            assert row["talk_s"] == facts["talk_s"]
        if "customer" in facts:
            expected = next(
                (cid for cid, name in CUSTOMERS.values() if name == facts["customer"]), None
            )
            assert row["customer_id"] == expected
        # Agents in the order they answered, as agent ids (agents.device), talk times add up.
        legs = event.summary.agents
        assert [a["agent"] for a in row["agents"]] == [AGENTS[leg.device] for leg in legs]
        assert sum(a["talk_s"] for a in row["agents"]) == row["talk_s"]
        if "agents" in facts:  # who talked, in order: never a Local hop, a trunk or a mobile
            assert [a["agent"] for a in row["agents"]] == [AGENTS[d] for d in facts["agents"]]
        if "agent_interface" in facts:
            device = facts["agent_interface"].split("/")[1].split("@")[0]
            assert row["agents"][0]["agent"] == AGENTS[device]
        if facts.get("recording"):
            assert row["recording_path"]
            if "ami_user" in facts:  # no VarSet on the wire: the decision's BRIDGE_RECORDING
                assert row["recording_path"] == f"{row['call_id']}.wav"
                assert "recording_path" in row["inferred"]
            else:
                assert "recording_path" not in row["inferred"]
        assert row["disposition"] is None
        # The customer's service history and the outbox follow in the same transaction.
        history = await pool.fetch(
            "SELECT summary FROM service_history WHERE call_id = $1", row["call_id"]
        )
        assert len(history) == (1 if row["customer_id"] else 0)
        # The card's history says which way the call went (a click-to-call is no inbound call).
        kind = {"inbound": "Inbound call", "outbound": "Outbound call", "internal": "Internal call"}
        assert all(h["summary"].startswith(kind[row["direction"]]) for h in history)
        outbox = await pool.fetchval(
            "SELECT state FROM call_outbox WHERE call_id = $1", row["call_id"]
        )
        assert outbox == "pending"


async def test_blind_transfer_lists_both_agents_in_order(
    pool: asyncpg.Pool[Any], writer: RecordWriter
) -> None:
    async with pool.acquire() as conn:
        await seed_crm(conn)
        await seed_decisions(conn, "blind-transfer")
    for event in ended_events("blind-transfer"):
        await writer.submit(event)
    await writer.wait_idle()
    row = await pool.fetchrow("SELECT agents, talk_s, customer_id FROM call_records")
    assert [(a["agent"], a["talk_s"]) for a in row["agents"]] == [("ann", 1), ("sue", 4)]
    assert row["agents"][0]["answered_at"] < row["agents"][1]["answered_at"]
    assert row["customer_id"] == "c-bob"


async def test_unknown_device_is_kept_as_the_device(
    pool: asyncpg.Pool[Any], writer: RecordWriter
) -> None:
    """No agents rows at all: the record names the extensions instead of dropping them."""
    for event in ended_events("regular-answered"):
        await writer.submit(event)
    await writer.wait_idle()
    row = await pool.fetchrow("SELECT agents, customer_id, rule FROM call_records")
    assert [a["agent"] for a in row["agents"]] == ["1001"]
    assert row["customer_id"] is None and row["rule"] is None
