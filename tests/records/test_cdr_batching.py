"""A call's Cdrs ride along with its end: one transaction for all of them, none on its own,
and still nothing lost to a SIGKILL (they are spooled as they come)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bridge.pbx_events import CdrRecord
from bridge.records import PbxCdr, RecordWriter, Spool
from bridge.records import writer as writer_module
from tests.records.factory import make_ended

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 23, 20, 4, tzinfo=UTC)


def cdr_events(call_id: str, uniqueids: tuple[str, ...] | None = None) -> list[CdrRecord]:
    """One `Cdr` per channel of the call, as the AMI link delivers them."""
    start = (NOW - timedelta(seconds=40)).strftime("%Y-%m-%d %H:%M:%S")
    return [
        CdrRecord(
            at=NOW,
            uniqueid=uniqueid,
            channel=f"PJSIP/trunk-{k:08x}",
            destination_channel="PJSIP/1001-0000000a" if k == 0 else "",
            source="+15551230002",
            destination="18005550100",
            disposition="ANSWERED",
            billable_s=32,
            duration_s=40,
            start_time=start,
            answer_time=start,
            end_time=NOW.strftime("%Y-%m-%d %H:%M:%S"),
        )
        for k, uniqueid in enumerate(uniqueids or (call_id, *(f"{call_id}.{k}" for k in range(4))))
    ]


class CountingPool:
    """The real pool, counting the connections the writer takes (one per transaction)."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool
        self.acquired = 0

    def acquire(self) -> Any:
        self.acquired += 1
        return self._pool.acquire()


class Commits:
    def __init__(self, writer: RecordWriter) -> None:
        self.keys: list[tuple[str, str]] = []
        self._changed = asyncio.Event()
        writer.on_committed(self._on_committed)

    def _on_committed(self, kind: str, key: str, at: datetime) -> None:
        self.keys.append((kind, key))
        self._changed.set()

    async def wait_for(self, kind: str, key: str) -> None:
        async with asyncio.timeout(10):
            while (kind, key) not in self.keys:
                self._changed.clear()
                await self._changed.wait()


@asynccontextmanager
async def running(pool: Any, spool_dir: Path, **options: Any) -> AsyncIterator[RecordWriter]:
    writer = RecordWriter(pool, Spool(spool_dir), region="US", **options)
    await writer.start()
    try:
        yield writer
    finally:
        await writer.stop()


async def test_a_calls_cdrs_are_written_with_its_end_in_one_transaction(
    pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    counting = CountingPool(pool)
    async with running(counting, tmp_path / "spool", cdr_hold_s=3600) as writer:
        commits = Commits(writer)
        cdrs = cdr_events("call.1")
        for cdr in cdrs:  # one at a time, as the AMI link delivers them
            await writer.on_events([cdr])
        assert writer.pending == len(cdrs)
        end = make_ended("call.1")
        end = replace(end, summary=replace(end.summary, uniqueids=tuple(c.uniqueid for c in cdrs)))
        await writer.on_events([end])
        await commits.wait_for("ended", "call.1")
        assert counting.acquired == 1
        assert [k for k, _ in commits.keys] == ["cdr"] * len(cdrs) + ["ended"]
    assert await pool.fetchval("SELECT count(*) FROM pbx_cdrs") == len(cdrs)
    assert await pool.fetchval("SELECT count(*) FROM call_records") == 1


async def test_a_cdr_after_its_calls_end_is_written_at_once(
    pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    async with running(pool, tmp_path / "spool", cdr_hold_s=3600) as writer:
        commits = Commits(writer)
        end = make_ended("call.2")  # its channels: call.2 and call.2-b
        await writer.on_events([end])
        await commits.wait_for("ended", "call.2")
        (late,) = cdr_events("call.2", ("call.2-b",))
        await writer.on_events([late])
        await commits.wait_for("cdr", "call.2-b")
    assert await pool.fetchval("SELECT uniqueid FROM pbx_cdrs") == "call.2-b"


async def test_cdrs_whose_end_never_comes_are_written_after_the_hold(
    pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    async with running(pool, tmp_path / "spool", cdr_hold_s=0.05) as writer:
        commits = Commits(writer)
        cdrs = cdr_events("call.3")
        await writer.on_events(cdrs)
        for cdr in cdrs:
            await commits.wait_for("cdr", cdr.uniqueid)
    assert await pool.fetchval("SELECT count(*) FROM pbx_cdrs") == len(cdrs)


async def test_held_cdrs_are_written_by_wait_idle_and_by_stop(
    pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    async with running(pool, tmp_path / "spool", cdr_hold_s=3600) as writer:
        await writer.on_events(cdr_events("call.4"))
        await writer.wait_idle()
        assert await pool.fetchval("SELECT count(*) FROM pbx_cdrs") == 5
        await writer.on_events(cdr_events("call.5"))
    assert await pool.fetchval("SELECT count(*) FROM pbx_cdrs") == 10


async def test_sigkill_with_cdrs_held_for_their_end_loses_none(
    pool: asyncpg.Pool[Any], database_url: str, tmp_path: Path
) -> None:
    """Accepted Cdrs are in the spool before the end comes: a bridge killed meanwhile writes
    them on its next start."""
    spool_dir = tmp_path / "spool"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.records.cdr_child",
        database_url,
        str(spool_dir),
        "call.6",
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
    assert len(acked) == 5
    assert await pool.fetchval("SELECT count(*) FROM pbx_cdrs") == 0  # held for the end

    async with running(pool, spool_dir) as writer:
        await writer.wait_idle()
    rows = await pool.fetch("SELECT uniqueid FROM pbx_cdrs")
    assert sorted(r["uniqueid"] for r in rows) == sorted(acked)


async def test_what_the_writer_accepted_is_written_without_decoding_it_back(
    pool: asyncpg.Pool[Any], tmp_path: Path, monkeypatch: Any
) -> None:
    """The end and the Cdrs accepted live are written from the objects themselves; only
    entries replayed from the spool file are decoded from their JSON."""
    decoded: list[str] = []
    real_decode = writer_module.decode_ended
    real_from_dict = PbxCdr.from_dict.__func__  # type: ignore[attr-defined]

    def counting_decode(data: Any) -> Any:
        decoded.append("ended")
        return real_decode(data)

    def counting_from_dict(cls: type[PbxCdr], data: Any) -> PbxCdr:
        decoded.append("cdr")
        return real_from_dict(cls, data)  # type: ignore[no-any-return]

    monkeypatch.setattr(writer_module, "decode_ended", counting_decode)
    monkeypatch.setattr(PbxCdr, "from_dict", classmethod(counting_from_dict))
    async with running(pool, tmp_path / "spool", cdr_hold_s=3600) as writer:
        commits = Commits(writer)
        await writer.on_events([*cdr_events("call.7"), make_ended("call.7")])
        await commits.wait_for("ended", "call.7")
    assert decoded == []
    assert await pool.fetchval("SELECT count(*) FROM pbx_cdrs") == 5
    assert await pool.fetchval("SELECT outcome FROM call_records") == "answered"


async def test_a_cdr_built_by_hand_is_stored_bounded_and_cleaned(
    pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    cdr = PbxCdr(
        uniqueid="call.8\x00" + "9" * 200,
        channel="PJSIP/trunk\x00-1",
        disposition="answered",
        duration_s=-5,
        last_data="x" * 5000,
    )
    async with running(pool, tmp_path / "spool", cdr_hold_s=3600) as writer:
        await writer.store_cdr(cdr)
        await writer.wait_idle()
    row = await pool.fetchrow("SELECT * FROM pbx_cdrs")
    assert row is not None
    assert row["uniqueid"] == ("call.8" + "9" * 200)[:150]
    assert (row["channel"], row["disposition"], row["duration_s"]) == (
        "PJSIP/trunk-1",
        "ANSWERED",
        0,
    )
    assert len(row["last_data"]) == 1024


class GatedPool:
    """The real pool; the first transaction waits at `acquire` until `gate` is set."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool
        self.acquired = 0
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        self.acquired += 1
        if self.acquired == 1:
            self.entered.set()
            await self.gate.wait()
        async with self._pool.acquire() as conn:
            yield conn


async def test_cdrs_coming_while_an_end_is_written_wait_for_their_own_end(
    pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    """The next call's Cdrs arrive while the previous call's end is being written: they go
    with their own end, not in a transaction of their own."""
    gated = GatedPool(pool)
    async with running(gated, tmp_path / "spool", cdr_hold_s=3600) as writer:
        commits = Commits(writer)
        await writer.on_events([make_ended("call.9")])
        async with asyncio.timeout(10):
            await gated.entered.wait()
        await writer.on_events(cdr_events("call.10"))
        gated.gate.set()
        await commits.wait_for("ended", "call.9")
        assert writer.pending == 5
        await writer.on_events([make_ended("call.10")])
        await commits.wait_for("ended", "call.10")
        assert gated.acquired == 2
