"""Real CDRs of the lab Asterisk 22 (tests/fixtures/cdr/README.md says which call each line
is): read without a problem, and the four calls rebuilt from cdr_csv's Master.csv and from
the cdr_pgsql table alike - an answered queue call, an attended transfer, a ringall, an
abandoned call - each once, marked reconciled."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bridge.config import DEFAULT_DEVICE_PATTERN
from bridge.sync.reconcile import backfill
from bridge.sync.sources import CsvCdrSource, build_cdr_source, parse_master_csv

FIXTURES = Path(__file__).parent.parent / "fixtures" / "cdr"
PATTERN = re.compile(DEFAULT_DEVICE_PATTERN)

# linkedid -> (caller ;2 uniqueid the AGI saw, caller, queue, outcome, agents in order)
CALLS = {
    "1796191488.0": ("1796191488.1", "+15551230002", "support", "answered", ["ann"]),
    "1796191561.8": ("1796191561.9", "+15551230002", "support", "answered", ["ann", "sue"]),
    "1796191662.4": ("1796191662.5", "+15551230001", "senior", "answered", ["sue"]),
    "1796193931.182": ("1796193931.183", "+15551230003", "support", "abandoned", []),
}
AGENTS = {"1001": "ann", "1002": "ben", "2001": "sue", "2002": "sam"}


def test_the_lab_master_csv_reads_without_a_problem() -> None:
    batch = parse_master_csv((FIXTURES / "Master.csv").read_bytes(), UTC)
    assert batch.problems == [] and len(batch.cdrs) == 19
    by_id = {(c.uniqueid, c.destination_channel): c for c in batch.cdrs}
    abandoned = by_id[("1796193931.183", "Local/1002@phones-0000005c;1")]
    # the dialplan's Answer() before the AGI: the caller leg has an answer time all the same
    assert abandoned.disposition == "NO ANSWER" and abandoned.billable_s == 5
    assert abandoned.answer_time == abandoned.start_time
    assert abandoned.last_application == "Queue" and abandoned.last_data == "support,t,,,30"
    ringall_loser = by_id[("1796191662.5", "Local/2002@phones-00000004;1")]
    assert ringall_loser.disposition == "NO ANSWER"
    answered = by_id[("1796191488.1", "Local/1001@phones-00000001;1")]
    assert answered.start_time == datetime(2026, 12, 2, 6, 4, 48, tzinfo=UTC)
    assert (answered.duration_s, answered.billable_s) == (3, 3)
    assert answered.source == "+15551230002" and answered.destination == "18005550100"


async def _routed_while_bridge_was_down(pool: asyncpg.Pool[Any]) -> None:
    """What the bridge's AGI route wrote for each call before it lost the ends."""
    async with pool.acquire() as conn:
        for device, agent in AGENTS.items():
            await conn.execute(
                "INSERT INTO agents (id, name, device, token_hash) VALUES ($1, $1, $2, $3)",
                agent,
                device,
                f"hash-{agent}",
            )
        for linkedid, (uniqueid, caller, queue, _, _) in CALLS.items():
            await conn.execute(
                "INSERT INTO route_decisions (uniqueid, linkedid, channel, caller, queue, rule,"
                " recording) VALUES ($1, $2, $3, $4, $5, 'default', $6)",
                uniqueid,
                linkedid,
                "Local/18005550100@inbound-00000000;2",
                caller,
                queue,
                f"{uniqueid}.wav",
            )


async def _check(pool: asyncpg.Pool[Any]) -> None:
    rows = {r["call_id"]: r for r in await pool.fetch("SELECT * FROM call_records")}
    assert set(rows) == set(CALLS)
    for call_id, (uniqueid, caller, queue, outcome, agents) in CALLS.items():
        row = rows[call_id]
        assert (row["caller"], row["queue"], row["outcome"]) == (caller, queue, outcome)
        assert [a["agent"] for a in row["agents"]] == agents
        # a recording path only for an answered call (nobody answered: an empty file)
        recording = f"{uniqueid}.wav" if outcome == "answered" else None
        assert row["source"] == "reconciled" and row["recording_path"] == recording
        assert row["started_at"] <= row["ended_at"]
    ringall = rows["1796191662.4"]
    assert ringall["talk_s"] == 20 and ringall["duration_s"] == 26


async def test_the_lab_calls_are_rebuilt_from_master_csv(pool: asyncpg.Pool[Any]) -> None:
    await _routed_while_bridge_was_down(pool)
    source = CsvCdrSource(FIXTURES / "Master.csv", UTC)
    found = await backfill(pool, PATTERN, None, source=source, region="US")
    assert (found.backfilled, found.unrebuildable, found.source_problems) == (4, (), ())
    await _check(pool)
    again = await backfill(pool, PATTERN, None, source=source, region="US")
    assert again.backfilled == 0


async def test_the_lab_calls_are_rebuilt_from_the_cdr_pgsql_table(
    pool: asyncpg.Pool[Any], database_url: str
) -> None:
    await _routed_while_bridge_was_down(pool)
    schema = (Path(__file__).parent / "cdr_pgsql_schema.sql").read_text()
    text = (FIXTURES / "cdr_pgsql.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    async with pool.acquire() as conn:
        await conn.execute(schema)
        columns = list(rows[0])
        await conn.copy_records_to_table(
            "cdr",
            records=[
                tuple(
                    datetime.fromisoformat(r[c])
                    if c == "calldate"
                    else int(r[c])
                    if c in {"duration", "billsec", "amaflags", "sequence"}
                    else r[c]
                    for c in columns
                )
                for r in rows
            ],
            columns=columns,
        )
    source = build_cdr_source(f"{database_url}?table=cdr", UTC)
    found = await backfill(pool, PATTERN, None, source=source, region="US")
    assert (found.backfilled, found.unrebuildable, found.source_problems) == (4, (), ())
    await _check(pool)
