"""Merging customers: everything moves in one transaction, audited, conflicts refused
(issue 17)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from bridge.crm import customers
from bridge.crm.merge import (
    MergePolicy,
    deliver_pending_merges,
    mark_crm_notified,
    merge,
    merges,
    pending_crm_merges,
)
from bridge.errors import MergeConflict, NotFound, UsageError, ValidationError


async def seed(pool: asyncpg.Pool[Any]) -> None:
    await pool.execute(
        "INSERT INTO agents (id, name, device, token_hash) VALUES"
        " ('1001','A','1001','h1'), ('1002','B','1002','h2')"
    )
    await pool.execute(
        "INSERT INTO customers (id, name, attributes) VALUES"
        " ('c1', 'Alice Chen', '{\"tier\": \"gold\"}'),"
        " ('c2', 'alice chen', '{\"email\": \"a@example.com\"}'),"
        " ('c3', 'Someone Else', '{}')"
    )
    await pool.execute(
        "INSERT INTO customer_phones (e164, customer_id) VALUES"
        " ('+15551230001', 'c1'), ('+15551230002', 'c2'), ('+15551230003', 'c3')"
    )
    await pool.execute(
        "INSERT INTO customer_tags (customer_id, tag)"
        " VALUES ('c1','vip'), ('c2','b2b'), ('c2','vip')"
    )
    await pool.execute("INSERT INTO customer_owners (customer_id, agent_id) VALUES ('c2', '1002')")
    await pool.execute("INSERT INTO orders (customer_id, product) VALUES ('c2', 'router')")
    await pool.execute("INSERT INTO contracts (customer_id, reference) VALUES ('c2', 'L-7')")
    await pool.execute("INSERT INTO marketing_events (customer_id, campaign) VALUES ('c2', 'x')")
    await pool.execute(
        "INSERT INTO call_records (call_id, caller, customer_id, ended_at, outcome) VALUES"
        " ('call-1', '+15551230002', 'c2', now(), 'answered'),"
        " ('call-2', '+15551230003', 'c3', now(), 'answered')"
    )
    await pool.execute(
        "INSERT INTO service_history (customer_id, call_id, summary) VALUES ('c2', 'call-1', 's')"
    )
    await pool.execute(
        "INSERT INTO card_views (at, agent_id, customer_id, call_id) VALUES"
        " (now(), '1002', 'c2', 'call-1')"
    )
    await pool.execute("UPDATE call_outbox SET state = 'delivered'")


async def counts(pool: asyncpg.Pool[Any], cid: str) -> dict[str, int]:
    out = {}
    for table in ("orders", "contracts", "marketing_events", "service_history", "call_records"):
        out[table] = await pool.fetchval(
            f"SELECT count(*) FROM {table} WHERE customer_id = $1", cid
        )
    return out


async def test_merge_moves_everything_to_the_survivor_in_one_go(pool: asyncpg.Pool[Any]) -> None:
    await seed(pool)
    result = await merge(pool, "c1", ["c2"], reason="dedup group 1")
    assert result.merge_id is not None
    after = await customers.get(pool, "c1")
    assert after is not None
    assert after["phones"] == ["+15551230001", "+15551230002"]
    assert after["tags"] == ["b2b", "vip"] and after["owner"] == "1002"
    assert after["attributes"] == {"email": "a@example.com", "tier": "gold"}
    assert after["name"] == "Alice Chen"
    assert await customers.get(pool, "c2") is None
    assert await counts(pool, "c1") == {
        "orders": 1, "contracts": 1, "marketing_events": 1, "service_history": 1,
        "call_records": 1,
    }  # fmt: skip
    assert result.moved["customer_phones"] == 1 and result.moved["call_records"] == 1
    # who saw c2's card is history: it stays as it was
    assert await pool.fetchval("SELECT customer_id FROM card_views") == "c2"
    # the moved call record goes to the CRM again with its new customer
    assert await pool.fetchval("SELECT state FROM call_outbox WHERE call_id = 'call-1'") == (
        "pending"
    )
    trail = await pool.fetch("SELECT action, target_id, before, after FROM audit_log ORDER BY id")
    assert [(r["action"], r["target_id"]) for r in trail] == [
        ("customer.merged_into", "c2"),
        ("customer.merge", "c1"),
    ]
    assert trail[0]["after"] == {"merged_into": "c1"} and trail[0]["before"]["owner"] == "1002"
    (record,) = await merges(pool, customer="c2")
    assert (record.survivor_id, record.merged_ids, record.reason) == ("c1", ["c2"], "dedup group 1")
    assert [m.id for m in await pending_crm_merges(pool)] == [record.id]
    await mark_crm_notified(pool, record.id)
    assert await pending_crm_merges(pool) == []


async def test_conflicts_are_refused_and_nothing_changes(pool: asyncpg.Pool[Any]) -> None:
    await seed(pool)
    await pool.execute("INSERT INTO customer_owners (customer_id, agent_id) VALUES ('c1', '1001')")
    await pool.execute("UPDATE customers SET attributes = '{\"tier\": \"silver\"}' WHERE id='c2'")
    before = [await customers.get(pool, c) for c in ("c1", "c2", "c3")]
    with pytest.raises(MergeConflict) as exc:
        await merge(pool, "c1", ["c2"])
    assert "attribute 'tier' differs" in str(exc.value) and "owner differs" in str(exc.value)
    assert "nothing changed" in str(exc.value)
    assert [await customers.get(pool, c) for c in ("c1", "c2", "c3")] == before
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 0
    assert await pool.fetchval("SELECT count(*) FROM customer_merges") == 0
    result = await merge(pool, "c1", ["c2"], MergePolicy(on_conflict="survivor"))
    assert result.survivor["owner"] == "1001" and result.survivor["attributes"]["tier"] == "gold"


async def test_dry_run_shows_the_result_and_changes_nothing(pool: asyncpg.Pool[Any]) -> None:
    await seed(pool)
    before = [await customers.get(pool, c) for c in ("c1", "c2")]
    result = await merge(pool, "c1", ["c2", "c3"], MergePolicy(owner=None), dry_run=True)
    assert result.merge_id is None and len(result.survivor["phones"]) == 3
    assert result.survivor["owner"] is None
    assert [await customers.get(pool, c) for c in ("c1", "c2")] == before
    assert await pool.fetchval("SELECT count(*) FROM customer_merges") == 0


@pytest.mark.parametrize(
    ("survivor", "others", "error"),
    [
        ("c1", [], UsageError),
        ("c1", ["c1"], UsageError),
        ("c1", ["nope"], NotFound),
        ("nope", ["c1"], NotFound),
        ("c1", ["c2\x00'; DROP TABLE customers;--"], ValidationError),
        ("c1", ["x" * 200], ValidationError),
        ("c1", ["c2'; DROP TABLE customers;--"], NotFound),
    ],
)
async def test_bad_requests_change_nothing(
    pool: asyncpg.Pool[Any], survivor: str, others: list[str], error: type[Exception]
) -> None:
    await seed(pool)
    with pytest.raises(error):
        await merge(pool, survivor, others)
    assert await pool.fetchval("SELECT count(*) FROM customers") == 3


async def test_unknown_owner_in_policy_is_refused(pool: asyncpg.Pool[Any]) -> None:
    await seed(pool)
    with pytest.raises(Exception) as exc:
        await merge(pool, "c1", ["c2"], MergePolicy(owner="ghost"))
    assert "ghost" in str(exc.value)
    assert await pool.fetchval("SELECT count(*) FROM customers") == 3


async def test_pending_merges_are_told_to_the_crm_in_order_and_a_failure_keeps_them(
    pool: asyncpg.Pool[Any],
) -> None:
    await seed(pool)
    await merge(pool, "c1", ["c2"])
    await merge(pool, "c1", ["c3"])
    seen: list[list[str]] = []

    async def refuse(record: Any) -> None:
        seen.append(record.merged_ids)
        raise ConnectionError("CRM down")

    with pytest.raises(ConnectionError):
        await deliver_pending_merges(pool, refuse)
    assert seen == [["c2"]] and len(await pending_crm_merges(pool)) == 2

    async def accept(record: Any) -> None:
        seen.append(record.merged_ids)

    assert await deliver_pending_merges(pool, accept) == 2
    assert seen == [["c2"], ["c2"], ["c3"]]
    assert await pending_crm_merges(pool) == []
    assert await deliver_pending_merges(pool, accept) == 0
