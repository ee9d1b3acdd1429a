"""A call with no routing decision (routed while the bridge was down, or adopted after a
restart) still names its customer from the caller's number, marked as inferred."""

from __future__ import annotations

from typing import Any

import asyncpg

from bridge.records.store import write_ended
from tests.records.factory import make_ended
from tests.records.helpers import seed_crm


async def test_the_callers_number_names_the_customer_when_no_decision_exists(
    pool: asyncpg.Pool[Any],
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await seed_crm(conn)
        customer = await conn.fetchval(
            "SELECT customer_id FROM customer_phones WHERE e164 = '+15551230002'"
        )
        assert customer is not None
        assert await write_ended(conn, make_ended("adopted.1", caller="+15551230002"))
        assert await write_ended(conn, make_ended("stranger.1", caller="+15559999999"))
        assert await write_ended(conn, make_ended("national.1", caller="5551230002"))
    rows = {
        r["call_id"]: r
        for r in await pool.fetch("SELECT call_id, customer_id, rule, inferred FROM call_records")
    }
    assert rows["adopted.1"]["customer_id"] == customer
    assert rows["adopted.1"]["rule"] is None and "customer_id" in rows["adopted.1"]["inferred"]
    # an unknown number, and a national one whose region only routing knew, name nobody
    assert rows["stranger.1"]["customer_id"] is None
    assert rows["national.1"]["customer_id"] is None
    history = await pool.fetchval(
        "SELECT customer_id FROM service_history WHERE call_id = 'adopted.1'"
    )
    assert history == customer
