"""A call with no routing decision (routed while the bridge was down, or adopted after a
restart) still names its customer from the caller's number, marked as inferred. The number
is read as routing reads it: national numbers in the configured `[pbx] default_region`."""

from __future__ import annotations

import dataclasses
from typing import Any

import asyncpg
import pytest

from bridge.models import CallEnded
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
        assert await write_ended(conn, make_ended("adopted.1", caller="+15551230002"), region="US")
        assert await write_ended(conn, make_ended("stranger.1", caller="+15559999999"), region="US")
        assert await write_ended(conn, make_ended("national.1", caller="5551230002"), region="US")
    rows = {
        r["call_id"]: r
        for r in await pool.fetch("SELECT call_id, customer_id, rule, inferred FROM call_records")
    }
    assert rows["adopted.1"]["customer_id"] == customer
    assert rows["adopted.1"]["rule"] is None and "customer_id" in rows["adopted.1"]["inferred"]
    # an unknown number names nobody; a national one is read in the configured region
    assert rows["stranger.1"]["customer_id"] is None
    assert rows["national.1"]["customer_id"] == customer
    assert "customer_id" in rows["national.1"]["inferred"]
    history = await pool.fetchval(
        "SELECT customer_id FROM service_history WHERE call_id = 'adopted.1'"
    )
    assert history == customer


UK_CUSTOMER = ("c-uk", "Brit Ltd", "+447700900123")


@pytest.mark.parametrize("direction", ["inbound", "outbound"])
async def test_a_uk_install_reads_national_numbers_in_its_region(
    pool: asyncpg.Pool[Any], direction: str
) -> None:
    """`07700 900123` on a UK install (`[pbx] default_region = "GB"`) is +447700900123, for a
    caller ID as for a number an agent dialled; the same digits on a US install are nobody."""
    cid, name, phone = UK_CUSTOMER
    await pool.execute("INSERT INTO customers (id, name) VALUES ($1, $2)", cid, name)
    await pool.execute(
        "INSERT INTO customer_phones (e164, customer_id) VALUES ($1, $2)", phone, cid
    )

    def call(call_id: str) -> CallEnded:
        ended = make_ended(call_id, caller="07700 900123")
        summary = dataclasses.replace(ended.summary, direction=direction)
        return dataclasses.replace(ended, summary=summary)

    async with pool.acquire() as conn, conn.transaction():
        assert await write_ended(conn, call("uk.1"), region="GB")
        assert await write_ended(conn, call("us.1"), region="US")
    rows = {
        r["call_id"]: r
        for r in await pool.fetch("SELECT call_id, customer_id, inferred FROM call_records")
    }
    assert rows["uk.1"]["customer_id"] == cid
    assert "customer_id" in rows["uk.1"]["inferred"]
    assert rows["us.1"]["customer_id"] is None
