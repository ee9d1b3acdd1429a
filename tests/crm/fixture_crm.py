"""The CRM the recorded traces were made with (tests/fixtures/asterisk-traces/README.md).

`await load_trace_crm(pool)` loads: +15551230001 Alice Chen (vip), +15551230002 Bob Li,
+8613800138000 张伟 (vip, complaint-risk); agents 1001, 1002 (support) and 2001, 2002
(senior) with devices equal to their ids; rule `vip` (tags_any vip → queue senior).
Unmatched callers go to the default queue `support` (the config default).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from bridge.crm.agents import create_agent
from bridge.routing.rules import make_rule
from bridge.routing.store import RuleStore

ALICE = "cust-alice"
BOB = "cust-bob"
ZHANG = "cust-zhangwei"

CUSTOMERS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (ALICE, "Alice Chen", "+15551230001", ("vip",)),
    (BOB, "Bob Li", "+15551230002", ()),
    (ZHANG, "张伟", "+8613800138000", ("vip", "complaint-risk")),
)
# id, name, role, queue the agent answers
AGENTS: tuple[tuple[str, str, str], ...] = (
    ("1001", "Agent 1001", "agent"),
    ("1002", "Agent 1002", "agent"),
    ("2001", "Agent 2001", "agent"),
    ("2002", "Agent 2002", "agent"),
)
AGENT_QUEUES = {"1001": "support", "1002": "support", "2001": "senior", "2002": "senior"}


async def load_trace_crm(pool: asyncpg.Pool[Any]) -> dict[str, str]:
    """Load the traces' CRM into empty tables; return {agent id: access token}."""
    async with pool.acquire() as conn, conn.transaction():
        for customer_id, name, phone, tags in CUSTOMERS:
            await conn.execute(
                "INSERT INTO customers (id, name) VALUES ($1, $2)", customer_id, name
            )
            await conn.execute(
                "INSERT INTO customer_phones (e164, customer_id) VALUES ($1, $2)",
                phone,
                customer_id,
            )
            for tag in tags:
                await conn.execute(
                    "INSERT INTO customer_tags (customer_id, tag) VALUES ($1, $2)", customer_id, tag
                )
    tokens = {}
    for agent_id, name, role in AGENTS:
        tokens[agent_id] = await create_agent(pool, agent_id, name, role, agent_id)
    store = RuleStore(pool)
    await store.add_rule(make_rule("vip", "senior", tags_any="vip"))
    return tokens
