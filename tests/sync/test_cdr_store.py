"""Calls that ended while the bridge was down are rebuilt from the PBX's own CDR store:
cdr_csv's Master.csv (hostile lines reported, never a crash or a silent skip) and a
cdr_pgsql table; a call that cannot be rebuilt is listed, counted and alerted as data loss.

The files here are written from the recorded traces' Cdr events in the exact format of
Asterisk 22's cdr/cdr_csv.c `build_csv_record` with the lab's cdr.conf `[csv]` (usegmtime,
loguniqueid, loguserfield: 18 columns); real lines of the lab's Master.csv are read and
rebuilt in test_real_cdrs.py.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bridge.config import DEFAULT_DEVICE_PATTERN
from bridge.connectors import BuiltinConnector
from bridge.records import PbxCdr
from bridge.sync import metrics as sync_metrics
from bridge.sync import run_sync
from bridge.sync.sources import CsvCdrSource, PgsqlCdrSource, build_cdr_source, parse_master_csv
from tests.records.helpers import ended_events, seed_crm, seed_decisions
from tests.sync.test_sync import trace_cdrs

PATTERN = re.compile(DEFAULT_DEVICE_PATTERN)
SCENARIOS = ("vip-answered", "blind-transfer", "abandoned", "concurrent-8")


def _q(value: str) -> str:
    """cdr_csv's append_string: always quoted, a quote doubled, nothing else escaped."""
    return '"' + value.replace('"', '""') + '"'


def _date(value: datetime | None) -> str:
    return _q(value.strftime("%Y-%m-%d %H:%M:%S")) if value else ""


def csv_line(cdr: PbxCdr, *, userfield: str = "") -> str:
    cells = [
        _q(""),
        _q(cdr.source),
        _q(cdr.destination),
        _q("from-trunk"),
        _q(f'"Caller" <{cdr.source}>'),
        _q(cdr.channel),
        _q(cdr.destination_channel),
        _q(cdr.last_application),
        _q(cdr.last_data),
        _date(cdr.start_time),
        _date(cdr.answer_time),
        _date(cdr.end_time),
        str(cdr.duration_s),
        str(cdr.billable_s),
        _q(cdr.disposition),
        _q("DOCUMENTATION"),
        _q(cdr.uniqueid),
        _q(userfield),
    ]
    return ",".join(cells) + "\n"


def master_csv(scenarios: tuple[str, ...] = SCENARIOS) -> bytes:
    return "".join(csv_line(c) for s in scenarios for c in trace_cdrs(s)).encode()


def test_master_csv_reads_back_every_trace_cdr() -> None:
    expected = [c for s in SCENARIOS for c in trace_cdrs(s)]
    batch = parse_master_csv(master_csv(), UTC)
    assert batch.problems == []
    assert batch.cdrs == expected


def test_master_csv_in_pbx_local_time_is_read_in_cdr_timezone() -> None:
    cdr = trace_cdrs("vip-answered")[0]
    assert cdr.start_time is not None
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    local = PbxCdr.from_dict({**cdr.to_dict(), "start_time": cdr.start_time.astimezone(berlin)})
    line = csv_line(local).replace("+01:00", "")
    (read,) = parse_master_csv(line.encode(), berlin).cdrs
    assert read.start_time == cdr.start_time


def test_hostile_lines_are_reported_with_their_line_and_the_rest_is_read() -> None:
    good = trace_cdrs("vip-answered")
    lines = [csv_line(c) for c in good]
    base = lines[0]
    hostile = [
        # a caller name holding a quote and CR/LF: one record over three lines, read
        base.replace('"Caller"', '"Ca""ll\r\ner\n"', 1).replace(good[0].uniqueid, "1795464246.900"),
        "\x00" + base.replace(good[0].uniqueid, "1795464246.901"),  # NUL: dropped, read
        '"a","b"\n',  # wrong column count
        base.replace(f'"{good[0].disposition}"', '"MAYBE"'),  # unknown disposition
        base.replace("2026-", "20x6-", 1),  # bad date
        ",".join(['"' + "x" * 70_000 + '"'] * 18) + "\n",  # huge cell
        base.replace(f'"{good[0].uniqueid}"', '""'),  # no uniqueid
        ",".join(['""'] * 16) + "\n",  # loguniqueid = no
    ]
    data = "".join(lines[:2] + hostile + lines[2:]).encode() + b"\xff\xfe bad utf-8\n"
    data += b'"torn last write'  # Asterisk killed mid-line
    batch = parse_master_csv(data, UTC)
    read = {c.uniqueid for c in batch.cdrs}
    assert {c.uniqueid for c in good} | {"1795464246.900", "1795464246.901"} <= read
    (multi,) = [c for c in batch.cdrs if c.uniqueid == "1795464246.900"]
    assert multi.channel == good[0].channel
    assert batch.problem_count == len(batch.problems) == 8, batch.problems
    assert all(re.match(r"Master\.csv:\d+: ", p) for p in batch.problems)
    assert any("16 columns" in p and "loguniqueid" in p for p in batch.problems)
    assert any("longer than" in p for p in batch.problems)


def test_cdr_source_setting_is_checked() -> None:
    from bridge.errors import ConfigError

    assert build_cdr_source("", UTC) is None
    assert isinstance(
        build_cdr_source("csv:/var/log/asterisk/cdr-csv/Master.csv", UTC), CsvCdrSource
    )
    pg = build_cdr_source("postgresql://u:p@db/asterisk_cdr?table=cdr&sslmode=disable", UTC)
    assert isinstance(pg, PgsqlCdrSource) and pg.table == "cdr"
    assert pg.url == "postgresql://u:p@db/asterisk_cdr?sslmode=disable"
    for bad in ("postgresql://db/x", "postgresql://db/x?table=cdr;drop", "ftp://x", "csv:"):
        with pytest.raises(ConfigError):
            build_cdr_source(bad, UTC)


class Alerts:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def alert(self, kind: str, key: str, message: str, details: Any = None) -> bool:
        self.sent.append((kind, key))
        return True


async def _bridge_was_down(pool: asyncpg.Pool[Any]) -> None:
    """Calls were routed (route_decisions) but their ends never reached the bridge."""
    async with pool.acquire() as conn:
        await seed_crm(conn)
        for scenario in SCENARIOS:
            await seed_decisions(conn, scenario, linkedid=True)


async def _check_rebuilt(pool: asyncpg.Pool[Any]) -> None:
    live = {e.call_id: e.summary for s in SCENARIOS for e in ended_events(s)}
    rows = {r["call_id"]: r for r in await pool.fetch("SELECT * FROM call_records")}
    assert set(rows) == set(live)
    for call_id, row in rows.items():
        assert row["source"] == "reconciled" and row["direction"] == "inbound"
        assert (row["queue"], row["outcome"]) == (live[call_id].queue, live[call_id].outcome)
        assert len(row["agents"]) == len(live[call_id].agents)


async def test_sync_rebuilds_calls_from_master_csv(pool: asyncpg.Pool[Any], tmp_path: Path) -> None:
    await _bridge_was_down(pool)
    path = tmp_path / "Master.csv"
    path.write_bytes(master_csv())
    alerts = Alerts()
    summary = await run_sync(
        pool,
        BuiltinConnector(),
        PATTERN,
        since=None,
        source=CsvCdrSource(path, UTC),
        alerts=alerts,
        region="US",
    )
    assert (summary.checked, summary.backfilled, summary.unrebuildable) == (11, 11, ())
    await _check_rebuilt(pool)
    assert alerts.sent == []
    again = await run_sync(
        pool, BuiltinConnector(), PATTERN, since=None, source=CsvCdrSource(path, UTC), region="US"
    )
    assert (again.checked, again.backfilled) == (11, 0)


async def test_calls_the_bridge_never_routed_are_rebuilt_under_their_linkedid(
    pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    """Down for the whole call: the FastAGI route failed (no route_decisions), and the lab's
    Master.csv has no linkedid column. Each call still comes back once, as its Linkedid."""
    async with pool.acquire() as conn:
        await seed_crm(conn)
    path = tmp_path / "Master.csv"
    path.write_bytes(master_csv())
    summary = await run_sync(
        pool, BuiltinConnector(), PATTERN, since=None, source=CsvCdrSource(path, UTC), region="US"
    )
    assert (summary.checked, summary.backfilled, summary.unrebuildable) == (11, 11, ())
    await _check_rebuilt(pool)


async def test_sync_rebuilds_calls_from_a_cdr_pgsql_table(
    pool: asyncpg.Pool[Any], database_url: str
) -> None:
    await _bridge_was_down(pool)
    call_of = {
        u: e.call_id for s in SCENARIOS for e in ended_events(s) for u in e.summary.uniqueids
    }
    schema = (Path(__file__).parent / "cdr_pgsql_schema.sql").read_text()
    async with pool.acquire() as conn:
        await conn.execute("CREATE SCHEMA asterisk")
        await conn.execute(
            schema.replace("TABLE IF NOT EXISTS cdr", "TABLE asterisk.cdr").replace(
                " ON cdr ", " ON asterisk.cdr "
            )
        )
        for scenario in SCENARIOS:
            for c in trace_cdrs(scenario):
                await conn.execute(
                    "INSERT INTO asterisk.cdr (calldate, src, dst, channel, dstchannel, lastapp,"
                    " lastdata, duration, billsec, disposition, uniqueid, linkedid)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    c.start_time,
                    c.source,
                    c.destination,
                    c.channel,
                    c.destination_channel,
                    c.last_application,
                    c.last_data,
                    c.duration_s,
                    c.billable_s,
                    c.disposition,
                    c.uniqueid,
                    call_of.get(c.uniqueid, c.uniqueid),
                )
    source = build_cdr_source(f"{database_url}?table=asterisk.cdr", UTC)
    summary = await run_sync(
        pool, BuiltinConnector(), PATTERN, since=None, source=source, region="US"
    )
    assert (summary.backfilled, summary.unrebuildable, summary.source_problems) == (11, (), ())
    await _check_rebuilt(pool)


async def test_a_call_that_cannot_be_rebuilt_is_listed_counted_and_alerted_once(
    pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    await _bridge_was_down(pool)
    path = tmp_path / "Master.csv"
    path.write_bytes(master_csv(("vip-answered",)))  # the other calls' CDRs are gone
    before = sync_metrics.UNREBUILDABLE._value.get()
    alerts = Alerts()
    later = datetime.now(UTC) + timedelta(days=1)  # every decision is older than max_call_s
    from bridge.sync.reconcile import backfill

    found = await backfill(
        pool, PATTERN, None, source=CsvCdrSource(path, UTC), alerts=alerts, now=later, region="US"
    )
    lost = {call_id for call_id, _ in found.unrebuildable}
    assert found.backfilled == 1 and len(lost) == 10
    assert all("no CDR" in reason for _, reason in found.unrebuildable)
    assert sync_metrics.UNREBUILDABLE._value.get() == before + 10
    assert sorted(k for kind, k in alerts.sent if kind == "data_loss") == sorted(lost)
    # Listed in the database for the operator, not counted twice by the next run.
    again = await backfill(
        pool, PATTERN, None, source=CsvCdrSource(path, UTC), now=later, region="US"
    )
    assert len(again.unrebuildable) == 10
    assert sync_metrics.UNREBUILDABLE._value.get() == before + 10
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM call_reconcile_failures WHERE resolved_at IS NULL"
        )
        == 10
    )
    # Not yet due: a decision younger than max_call_s may be a call still in progress.
    fresh = await backfill(pool, PATTERN, None, source=CsvCdrSource(path, UTC), region="US")
    assert fresh.unrebuildable == ()
