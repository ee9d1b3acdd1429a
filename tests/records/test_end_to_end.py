"""The records pipeline as the composition root wires it: a trace's AMI bytes through the
tracker into the writer, the outbox, a REST CRM on loopback; a disposition follows."""

from __future__ import annotations

import asyncio
import re
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bridge.ami.decode import decode_event
from bridge.ami.protocol import AmiParser
from bridge.config import DEFAULT_DEVICE_PATTERN, build_config
from bridge.pbx_events import CdrRecord
from bridge.records.wiring import build_records
from bridge.tasks import Backoff
from bridge.tracker import CallTracker
from tests.conftest import TRACES
from tests.connectors.crm_server import FIELD_MAP, TOKEN, CrmServer
from tests.records.helpers import seed_crm, seed_decisions


async def test_trace_to_external_crm_with_disposition(
    pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    crm = CrmServer(fail_first=1)
    await crm.start()
    config = build_config(
        {
            "crm": {
                "connector": "rest",
                "lookup_url": f"{crm.url}/customers?phone={{phone}}",
                "records_url": f"{crm.url}/calls/{{call_id}}",
                "auth_header": f"Authorization: {TOKEN}",
                "field_map": FIELD_MAP,
            }
        },
        {},
        runtime=False,
    )
    async with pool.acquire() as conn:
        await seed_crm(conn)
        await seed_decisions(conn, "unicode-name")
    parts = build_records(config, pool, spool_dir=tmp_path / "spool")
    parts.outbox._backoff = Backoff(0.01, 300.0)  # retry the first refused post quickly
    delivered: list[str] = []
    arrived = asyncio.Event()

    def on_outcome(call_id: str, outcome: str, lag: float) -> None:
        if outcome == "delivered":
            delivered.append(call_id)
            arrived.set()

    parts.outbox.on_outcome(on_outcome)
    try:
        async with AsyncExitStack() as stack:
            for component in parts.components():
                await component.start()
                stack.push_async_callback(component.stop)
            tracker = CallTracker(re.compile(DEFAULT_DEVICE_PATTERN))
            for frame in AmiParser().feed((TRACES / "unicode-name" / "ami.log").read_bytes()):
                event = decode_event(frame, datetime.now(UTC))
                if event is None:
                    continue
                if isinstance(event, CdrRecord):
                    await parts.writer.on_event(event)
                for out in tracker.feed(event):
                    await parts.writer.on_event(out)
            for out in tracker.flush():
                await parts.writer.on_event(out)
            async with asyncio.timeout(10):
                await arrived.wait()
            call_id = delivered[0]
            assert crm.records[call_id]["customer_id"] == "c-zhang"
            arrived.clear()
            await pool.execute(
                "UPDATE call_records SET disposition = 'complaint', notes = '太慢了'"
                " WHERE call_id = $1",
                call_id,
            )
            parts.outbox.wake()
            async with asyncio.timeout(10):
                await arrived.wait()
            await parts.outbox.refresh_stats()
            health = {c.name: c.health() for c in parts.components()}
    finally:
        await crm.close()
    assert crm.accepted == {call_id: 1}
    sent = crm.records[call_id]
    assert (sent["callRef"], sent["disposition"], sent["notes"]) == (call_id, "complaint", "太慢了")
    assert [a["agent"] for a in sent["agents"]] == ["sue"]
    assert await pool.fetchval("SELECT count(*) FROM pbx_cdrs") == 5
    assert health["outbox"].detail["backlog"] == 0
    assert health["records"].state == "up"
