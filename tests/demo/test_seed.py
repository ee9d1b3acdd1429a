"""The demo CRM loads into a real database once; a second load only rotates agent tokens."""

from __future__ import annotations

from typing import Any

import asyncpg

from bridge.crm.agents import authenticate
from bridge.demo.data import AGENTS, RULES, customers
from bridge.demo.seed import seed


async def counts(pool: asyncpg.Pool[Any]) -> dict[str, int]:
    tables = [
        "customers",
        "customer_phones",
        "customer_tags",
        "customer_owners",
        "orders",
        "contracts",
        "marketing_events",
        "service_history",
        "routing_rules",
        "agents",
    ]
    return {t: await pool.fetchval(f'SELECT count(*) FROM "{t}"') for t in tables}


async def test_seed_twice_changes_nothing_but_tokens(pool: asyncpg.Pool[Any]) -> None:
    first = await seed(pool)
    before = await counts(pool)
    assert before["customers"] == len(customers()) >= 30
    assert before["agents"] == len(AGENTS)
    assert before["routing_rules"] == len(RULES)
    for table in ("orders", "contracts", "marketing_events", "service_history", "customer_owners"):
        assert before[table] > 0, table
    assert {r["tag"] for r in await pool.fetch("SELECT DISTINCT tag FROM customer_tags")} >= {
        "vip",
        "complaint-risk",
    }

    second = await seed(pool)
    assert await counts(pool) == before
    assert [a for a, _ in first] == [a for a, _ in second] == [a.id for a in AGENTS]
    for (agent_id, old), (_, new) in zip(first, second, strict=True):
        assert old != new
        assert await authenticate(pool, old) is None
        agent = await authenticate(pool, new)
        assert agent is not None and agent.id == agent_id
    roles = {a.id: a.role for a in AGENTS}
    assert roles["lead"] == "supervisor" and roles["admin"] == "admin"


async def test_demo_rules_route_vip_and_china_callers(pool: asyncpg.Pool[Any]) -> None:
    await seed(pool)
    rows = await pool.fetch(
        "SELECT name, queue, caller_prefix FROM routing_rules ORDER BY position"
    )
    assert [r["name"] for r in rows] == [r.name for r in RULES]
    assert next(r for r in rows if r["name"] == "china")["caller_prefix"] == "+86"
    alice = await pool.fetchval(
        "SELECT customer_id FROM customer_phones WHERE e164 = '+15551230001'"
    )
    assert alice == "demo-alice"
