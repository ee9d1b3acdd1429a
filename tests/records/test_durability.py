"""The writer loses nothing: redelivery, dispositions, SIGKILL, PostgreSQL going away."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from bridge.ami.decode import decode_event
from bridge.ami.protocol import AmiParser
from bridge.ami_replay import ReplayClock
from bridge.config import DEFAULT_DEVICE_PATTERN
from bridge.db.pool import create_pool
from bridge.models import CallEnded
from bridge.records import RecordWriter, Spool
from bridge.tracker import CallTracker
from tests.conftest import TRACES
from tests.records.factory import make_ended
from tests.records.helpers import ended_events, seed_crm, seed_decisions
from tests.records.proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]


async def file_disposition(pool: asyncpg.Pool[Any], call_id: str, value: str, notes: str) -> None:
    """What the agent page does (bridge/pops/disposition.py): upsert disposition and notes."""
    await pool.execute(
        "INSERT INTO call_records (call_id, disposition, notes) VALUES ($1, $2, $3)"
        " ON CONFLICT (call_id) DO UPDATE SET disposition = EXCLUDED.disposition,"
        " notes = EXCLUDED.notes, updated_at = now()",
        call_id,
        value,
        notes,
    )


async def test_same_end_event_twice_is_one_row_and_one_delivery(
    pool: asyncpg.Pool[Any], writer: RecordWriter
) -> None:
    event = make_ended("1700000000.1")
    await writer.submit(event)
    await writer.wait_idle()
    await pool.execute("UPDATE call_outbox SET state = 'delivered'")
    await writer.submit(event)
    await writer.submit_many([event, event])
    await writer.wait_idle()
    assert await pool.fetchval("SELECT count(*) FROM call_records") == 1
    assert await pool.fetchval("SELECT count(*) FROM call_record_channels") == 2
    # Nothing changed, so nothing new for the CRM either.
    assert await pool.fetchval("SELECT state FROM call_outbox") == "delivered"


async def test_disposition_filed_before_the_record_is_kept(
    pool: asyncpg.Pool[Any], writer: RecordWriter
) -> None:
    async with pool.acquire() as conn:
        await seed_crm(conn)
        await seed_decisions(conn, "regular-answered")
    (event,) = ended_events("regular-answered")
    await file_disposition(pool, event.call_id, "complaint", "angry 'quote'; DROP TABLE x")
    assert await pool.fetchval("SELECT count(*) FROM call_outbox") == 0  # not ended yet
    await writer.submit(event)
    await writer.wait_idle()
    row = await pool.fetchrow("SELECT * FROM call_records")
    assert (row["disposition"], row["notes"]) == ("complaint", "angry 'quote'; DROP TABLE x")
    assert row["outcome"] == "answered" and row["customer_id"] == "c-bob"
    hist = await pool.fetchrow("SELECT disposition, notes FROM service_history")
    assert hist["disposition"] == "complaint"
    assert await pool.fetchval("SELECT state FROM call_outbox") == "pending"


async def test_disposition_filed_after_the_record_is_kept_and_requeued(
    pool: asyncpg.Pool[Any], writer: RecordWriter
) -> None:
    async with pool.acquire() as conn:
        await seed_crm(conn)
        await seed_decisions(conn, "regular-answered")
    (event,) = ended_events("regular-answered")
    await writer.submit(event)
    await writer.wait_idle()
    await pool.execute("UPDATE call_outbox SET state = 'delivered', delivered_at = now()")
    await file_disposition(pool, event.call_id, "follow_up", "call back Monday")
    # The disposition must reach the external CRM: the record is queued again.
    assert await pool.fetchval("SELECT state FROM call_outbox") == "pending"
    assert await pool.fetchval("SELECT disposition FROM service_history") == "follow_up"
    await writer.submit(event)  # a late redelivery of the end event
    await writer.wait_idle()
    row = await pool.fetchrow("SELECT disposition, notes FROM call_records")
    assert (row["disposition"], row["notes"]) == ("follow_up", "call back Monday")


async def test_hostile_text_is_stored_safely(pool: asyncpg.Pool[Any], writer: RecordWriter) -> None:
    nasty = "x\x00y\r\nz'\"; DROP TABLE call_records; --<script>\udcff" + "é" * 5000
    event = make_ended("1700000000.9", caller=nasty, device="1001\r\nAction: Hangup")
    await writer.submit(event)
    await writer.wait_idle()
    row = await pool.fetchrow("SELECT caller, agents FROM call_records")
    assert "\x00" not in row["caller"] and row["caller"].startswith("xy\r\nz'")
    assert len(row["caller"]) <= 200
    assert row["agents"][0]["agent"] == "1001\r\nAction: Hangup"


async def test_oversized_call_id_is_refused_not_truncated(
    pool: asyncpg.Pool[Any], writer: RecordWriter, tmp_path: Path
) -> None:
    await writer.submit(make_ended("9" * 151))
    await writer.submit(make_ended("9" * 150))
    await writer.wait_idle()
    assert await pool.fetchval("SELECT call_id FROM call_records") == "9" * 150
    assert "call_id" in (tmp_path / "spool" / "rejected.jsonl").read_text()


async def test_malformed_spool_entry_is_set_aside_not_blocking(
    pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    good = make_ended("1700000000.2")
    from bridge.records.codec import encode_ended

    (spool_dir / "records.jsonl").write_text(
        '{"n":1,"k":"ended","v":{"call_id":"bad","summary":{"outcome":"nope"}}}\n'
        f'{{"n":2,"k":"ended","v":{encode_ended(good)}}}\n'
        '{"n":3,"k":"ended","v":{"call_id":'  # torn last line: a SIGKILL mid-write
    )
    w = RecordWriter(pool, Spool(spool_dir), region="US")
    await w.start()
    try:
        await w.wait_idle()
    finally:
        await w.stop()
    assert await pool.fetchval("SELECT call_id FROM call_records") == "1700000000.2"
    assert "outcome" in (spool_dir / "rejected.jsonl").read_text()


def _dead_port() -> socket.socket:
    """A bound, non-listening loopback port: connections to it are refused."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s


def _url_at(url: str, port: int) -> str:
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{port}"))


@pytest.mark.slow
async def test_sigkill_after_acknowledge_loses_no_record(
    pool: asyncpg.Pool[Any], database_url: str, tmp_path: Path
) -> None:
    """A real bridge process accepts end events while PostgreSQL is unreachable and is
    SIGKILLed before writing any; the next start writes every acknowledged one."""
    spool_dir = tmp_path / "spool"
    dead = _dead_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.records.spool_child",
        _url_at(database_url, dead.getsockname()[1]),
        str(spool_dir),
        "concurrent-8",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    acked: list[str] = []
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            while (line := (await proc.stdout.readline()).decode().split()) != ["DONE"]:
                assert line, "child exited early"
                acked.append(line[1])
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        dead.close()
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) == 8
    assert await pool.fetchval("SELECT count(*) FROM call_records") == 0

    w = RecordWriter(pool, Spool(spool_dir), region="US")
    await w.start()
    try:
        await w.wait_idle()
    finally:
        await w.stop()
    rows = await pool.fetch("SELECT call_id, outcome FROM call_records")
    assert sorted(r["call_id"] for r in rows) == sorted(acked)
    assert all(r["outcome"] == "answered" for r in rows)


async def _wait_degraded(w: RecordWriter) -> None:
    async with asyncio.timeout(10):
        await w.wait_outage()
    assert w.health().state == "degraded"


async def test_postgres_going_away_mid_stream_loses_nothing(
    pool: asyncpg.Pool[Any], database_url: str, tmp_path: Path
) -> None:
    parts = urlsplit(database_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    via = await create_pool(_url_at(database_url, proxy.port), min_size=0, max_size=3)
    w = RecordWriter(via, Spool(tmp_path / "spool"), retry_max_s=0.1, region="US")
    await w.start()
    try:
        events = [make_ended(f"1700000100.{i}") for i in range(60)]
        await w.submit_many(events[:20])
        await w.wait_idle()
        assert w.health().state == "up"
        await proxy.cut()  # PostgreSQL "restarts"
        await w.submit_many(events[20:40])
        await _wait_degraded(w)
        assert w.health().detail["spool_pending"] > 0
        await proxy.restore()
        await w.submit_many(events[40:])
        await w.wait_idle()
        await proxy.cut()  # and once more, with nothing in flight
        await proxy.restore()
        await w.submit(events[0])
        await w.wait_idle()
        assert w.health().state == "up"
    finally:
        await w.stop()
        await via.close()
        await proxy.close()
    ids = [r["call_id"] for r in await pool.fetch("SELECT call_id FROM call_records")]
    assert sorted(ids) == sorted(e.call_id for e in events)
    assert await pool.fetchval("SELECT count(*) FROM call_outbox") == 60


async def test_backends_terminated_repeatedly_lose_nothing(
    pool: asyncpg.Pool[Any], database_url: str, tmp_path: Path
) -> None:
    own = await create_pool(database_url, min_size=0, max_size=3)
    w = RecordWriter(own, Spool(tmp_path / "spool"), retry_max_s=0.05, region="US")
    await w.start()
    killer = await asyncpg.connect(database_url)
    killed = 0
    try:
        events = [make_ended(f"1700000200.{i}") for i in range(100)]
        for chunk in range(10):
            await w.submit_many(events[chunk * 10 : chunk * 10 + 10])
            killed += await killer.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'"
            )
        await w.wait_idle()
    finally:
        await killer.close()
        await w.stop()
        await own.close()
    assert killed > 0
    assert await pool.fetchval("SELECT count(*) FROM call_records") == 100


async def test_ami_link_down_at_hangup_is_completed_by_resync_with_inferred(
    pool: asyncpg.Pool[Any], writer: RecordWriter
) -> None:
    """The link drops before the Hangup events arrive; after reconnecting, the channel
    listing no longer has the call, so the tracker ends it and the record marks ended_at."""
    data = (TRACES / "vip-answered" / "ami.log").read_bytes()
    tracker = CallTracker(re.compile(DEFAULT_DEVICE_PATTERN))
    clock = ReplayClock()
    for frame in AmiParser().feed(data):
        if frame.get("Event") == "Hangup":
            break  # the link goes down here
        event = decode_event(frame, clock())
        if event is not None:
            for out in tracker.feed(event):
                assert not isinstance(out, CallEnded)
    ended = [
        e
        for e in tracker.resync([], [], now=datetime(2026, 1, 1, 0, 5, tzinfo=UTC))
        if isinstance(e, CallEnded)
    ]
    assert len(ended) == 1
    async with pool.acquire() as conn:
        await seed_crm(conn)
        await seed_decisions(conn, "vip-answered")
    await writer.submit(ended[0])
    await writer.wait_idle()
    row = await pool.fetchrow("SELECT * FROM call_records")
    assert "ended_at" in row["inferred"]
    assert row["customer_id"] == "c-alice" and row["queue"] == "senior"
    assert [a["agent"] for a in row["agents"]] == ["sue"]


async def test_stop_during_an_outage_is_prompt_and_keeps_the_records(
    pool: asyncpg.Pool[Any], database_url: str, tmp_path: Path
) -> None:
    dead = _dead_port()
    down = await create_pool(_url_at(database_url, dead.getsockname()[1]), min_size=0)
    w = RecordWriter(down, Spool(tmp_path / "spool"), retry_max_s=0.05, drain_s=0.2, region="US")
    await w.start()
    await w.submit_many([make_ended(f"1700000300.{i}") for i in range(5)])
    await _wait_degraded(w)
    async with asyncio.timeout(5):  # shutdown must not hang on an unreachable database
        await w.stop()
    await down.close()
    dead.close()
    again = RecordWriter(pool, Spool(tmp_path / "spool"), region="US")
    await again.start()
    try:
        await again.wait_idle()
    finally:
        await again.stop()
    assert await pool.fetchval("SELECT count(*) FROM call_records") == 5
