"""Bursts lose no call end: a full record writer pauses the AMI read (TCP holds the rest),
while a slow screen-pop subscriber sheds; one warning per episode, not one per event."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bridge.ami.pipeline import AmiPipeline
from bridge.config import DEFAULT_DEVICE_PATTERN
from bridge.models import CALL_EVENT_TYPES, CallEnded
from bridge.records import RecordWriter, Spool
from bridge.tracker import CallTracker
from tests.ami.fake_ami import FakeAmi, Session, encode
from tests.ami.test_link import SECRET, config

WAIT = 60.0  # generous "did not hang" bound
BURST_WAIT = 540.0  # 20,000 records through real PostgreSQL (~30 s) on a shared 2-core machine


def burst(calls: int, first: int = 1_795_000_000) -> bytes:
    """`calls` unanswered inbound calls back to back: Newchannel then Hangup for each."""
    out = []
    for n in range(calls):
        uid = f"{first + n}.{n}"
        channel = f"PJSIP/trunk-{n:08x}"
        common = [("Channel", channel), ("Uniqueid", uid), ("Linkedid", uid)]
        out.append(
            encode(
                [
                    ("Event", "Newchannel"),
                    *common,
                    ("ChannelState", "4"),
                    ("CallerIDNum", f"+1555{n:07d}"),
                    ("CallerIDName", ""),
                    ("Context", "from-trunk"),
                    ("Exten", "+15550100"),
                ]
            )
        )
        out.append(encode([("Event", "Hangup"), *common, ("Cause", "16"), ("Cause-txt", "Normal")]))
    return b"".join(out)


def make_ami(port: int, queue: int, **kw: Any) -> AmiPipeline:
    tracker = CallTracker(re.compile(DEFAULT_DEVICE_PATTERN), cdr_grace_s=0.5)
    return AmiPipeline.build(config(port, **kw), tracker, tick_s=0.05, subscriber_queue=queue)


async def test_a_full_lossless_subscriber_pauses_the_read_and_a_slow_shedding_one_drops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    gate = asyncio.Event()
    kept: list[str] = []
    all_kept = asyncio.Event()

    async def records(batch: list[Any]) -> None:
        await gate.wait()
        kept.extend(e.call_id for e in batch if isinstance(e, CallEnded))
        if len(kept) == 300:
            all_kept.set()

    async def pops(_event: Any) -> None:
        await all_kept.wait()  # behind for the whole burst: one shedding episode

    # keepalive far shorter than the pause: a Pong unread behind our own backpressure must
    # not count as a dead link.
    async with FakeAmi([Session(play=burst(300))], secret=SECRET) as pbx:
        ami = make_ami(pbx.port, 20, keepalive_s=0.05)
        ami.events.subscribe(pops, CALL_EVENT_TYPES)
        ami.events.subscribe(records, CALL_EVENT_TYPES, lossless=True, batch=True)
        await ami.start()
        try:
            await asyncio.wait_for(ami.link.wait_until(lambda: ami.link.excused_pongs >= 3), WAIT)
            gate.set()
            await asyncio.wait_for(all_kept.wait(), WAIT)
            assert ami.link.sessions == 1 and ami.link.reconnects == 0
        finally:
            await ami.stop()
    assert sorted(kept) == sorted(f"{1_795_000_000 + n}.{n}" for n in range(300))
    assert ami.link.pauses >= 1
    drops = [r for r in caplog.records if "dropping its events" in r.getMessage()]
    pauses = [r for r in caplog.records if "AMI reads paused" in r.getMessage()]
    assert len(drops) == 1  # one warning for the episode, however many were dropped
    assert len(pauses) == ami.link.pauses


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_a_20000_call_burst_gives_20000_rows(pool: asyncpg.Pool[Any], tmp_path: Path) -> None:
    writer = RecordWriter(pool, Spool(tmp_path / "spool"), region="US")
    calls = int(os.environ.get("BURST_CALLS", "20000"))
    all_written = asyncio.Event()
    writer.on_committed(lambda *_: writer.written >= calls and all_written.set())  # type: ignore[func-returns-value]
    await writer.start()
    play = Session(play=burst(calls), max_piece=1 << 16)
    async with FakeAmi([play], secret=SECRET) as pbx:
        ami = make_ami(pbx.port, 10_000)
        slow_pops = asyncio.Event()  # a screen-pop fan-out that never keeps up

        async def pops(_event: Any) -> None:
            await slow_pops.wait()

        ami.events.subscribe(pops, CALL_EVENT_TYPES)
        ami.events.subscribe(writer.on_events, CALL_EVENT_TYPES, lossless=True, batch=True)
        await ami.start()
        try:
            await asyncio.wait_for(all_written.wait(), BURST_WAIT)
            assert ami.link.sessions == 1 and ami.link.reconnects == 0
        finally:
            slow_pops.set()
            await ami.stop()
            await writer.stop()
    assert await pool.fetchval("SELECT count(*) FROM call_records") == calls
    assert await pool.fetchval("SELECT count(DISTINCT call_id) FROM call_records") == calls
