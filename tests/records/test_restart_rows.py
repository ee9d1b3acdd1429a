"""The bridge (re)starts while a call rings or talks on the simulator, which lists what a
real Asterisk 22 lists then: the call is adopted from the listing and lands in call_records
answered, with its agent and talk time, the unseen parts marked inferred."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import asyncpg
import pytest

from bridge.ami.pipeline import AmiPipeline
from bridge.config import DEFAULT_DEVICE_PATTERN, AmiConfig
from bridge.models import CALL_EVENT_TYPES, CallEnded, CallEvent
from bridge.records import RecordWriter
from bridge.sim import AmiServer, AmiUser, CallPlan, SimPbx, lab_config
from bridge.tracker import CallTracker
from tests.records.helpers import seed_crm
from tests.sim.conftest import GatedClock, ScriptedAgi

USERS = (AmiUser("bridge", "s3cret"),)


@pytest.mark.parametrize("technology", ["Local", "PJSIP"])
@pytest.mark.parametrize("moment", ["ringing", "talking"])
async def test_call_in_progress_at_start_is_recorded_answered(
    moment: str, technology: str, pool: asyncpg.Pool[Any], writer: RecordWriter
) -> None:
    async with pool.acquire() as conn:
        await seed_crm(conn)
    agi = ScriptedAgi(lambda env: ['SET VARIABLE BRIDGE_QUEUE "support"'])
    agi.server = await asyncio.start_server(agi.handle, "127.0.0.1", 0)
    clock = GatedClock()
    pbx = SimPbx(lab_config(technology=technology, agi_port=agi.port, ami_users=USERS), clock=clock)
    ended = asyncio.Event()

    async def record(event: CallEvent) -> None:
        if isinstance(event, CallEnded):
            await writer.submit(event)
            ended.set()

    try:
        async with AmiServer(pbx) as ami:
            call = pbx.place_call(CallPlan("+15551230002", "Bob", ring_s=6, talk_s=20))
            await clock.parked()  # ringing
            if moment == "talking":
                clock.release()
                await clock.parked()  # talking
            tracker = CallTracker(re.compile(DEFAULT_DEVICE_PATTERN))
            config = AmiConfig(port=ami.port, username="bridge", secret="s3cret")
            pipeline = AmiPipeline.build(config, tracker)
            pipeline.events.subscribe(record, CALL_EVENT_TYPES)
            await pipeline.start()
            try:
                await asyncio.wait_for(pipeline.link.connected(), 10)  # logged in and resynced
                assert tracker.active_calls == 1
                clock.release()  # the handset answers (ringing), or the talk ends
                if moment == "ringing":
                    await clock.parked()
                    clock.release()
                assert (await asyncio.wait_for(call, 10)) is not None
                await asyncio.wait_for(ended.wait(), 10)
            finally:
                await pipeline.stop()
    finally:
        await pbx.stop()
        agi.server.close()
        await agi.server.wait_closed()
    await writer.wait_idle()
    row = await pool.fetchrow("SELECT * FROM call_records")
    assert row is not None
    assert (row["outcome"], row["queue"], row["caller"]) == ("answered", "support", "+15551230002")
    assert [(a["agent"], a["talk_s"]) for a in row["agents"]] == [("ann", 20)]
    assert row["talk_s"] == 20 and row["customer_id"] == "c-bob"
    assert "started_at" in row["inferred"]
    assert ("answered_at" in row["inferred"]) == (moment == "talking")
