"""A call record reaches a prebuilt CRM through the real outbox (PostgreSQL): the CRM's
failures are retried, and the record lands once, linked to the caller's contact."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from bridge.records import RecordWriter
from bridge.records.outbox import OutboxWorker
from tests.connectors.prebuilt_fixtures import KNOWN, vendor
from tests.connectors.test_prebuilt_connectors import CONTACT_ID, written
from tests.records.factory import make_ended
from tests.records.test_outbox import Outcomes


@pytest.mark.parametrize("name", ["salesforce", "odoo"])
async def test_outbox_retries_a_failing_crm_and_writes_the_call_once(
    pool: asyncpg.Pool[Any], writer: RecordWriter, name: str
) -> None:
    async with vendor(name) as v:
        v.fake.hostile = "500"
        worker = OutboxWorker(pool, v.connector, max_attempts=10, backoff_s=0.01, poll_s=0.02)
        outcomes = Outcomes(worker)
        writer.on_committed(lambda kind, key, at: worker.wake())
        await worker.start()
        try:
            await writer.submit(make_ended("1796193603.7", caller=KNOWN))
            await outcomes.wait_for("1796193603.7", "retry")
            v.fake.hostile = ""
            await outcomes.wait_for("1796193603.7", "delivered")
        finally:
            await worker.stop()
        rows = written(name, v.fake)
        assert v.fake.violations == []
    assert len(rows) == 1 and "1796193603.7" in str(rows[0])
    link = rows[0].get("WhoId") or str(rows[0].get("res_id"))
    assert link == CONTACT_ID[name]
    assert await pool.fetchval("SELECT state FROM call_outbox") == "delivered"
