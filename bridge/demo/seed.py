"""Load the demo CRM into the database, once: a second demo start changes nothing except
the agents' tokens (each start prints fresh ones; the old ones stop working)."""

from __future__ import annotations

from typing import Any

import asyncpg

from bridge.crm.agents import create_agent, rotate_token
from bridge.db.errors import map_db_errors
from bridge.demo.data import AGENTS, RULES, DemoCustomer, customers
from bridge.errors import ValidationError
from bridge.routing.rules import Rule, parse_attr
from bridge.routing.store import RuleStore


async def seed_customers(pool: asyncpg.Pool[Any], people: list[DemoCustomer]) -> int:
    """Insert the customers that are not there yet (with everything attached); return how many."""
    added = 0
    with map_db_errors("cannot load the demo customers"):
        async with pool.acquire() as conn, conn.transaction():
            for c in people:
                inserted = await conn.fetchval(
                    "INSERT INTO customers (id, name, attributes) VALUES ($1, $2, $3)"
                    " ON CONFLICT (id) DO NOTHING RETURNING id",
                    c.id,
                    c.name,
                    c.attributes,
                )
                if inserted is None:
                    continue
                added += 1
                for phone in c.phones:
                    await conn.execute(
                        "INSERT INTO customer_phones (e164, customer_id) VALUES ($1, $2)"
                        " ON CONFLICT (e164) DO NOTHING",
                        phone,
                        c.id,
                    )
                for tag in c.tags:
                    await conn.execute(
                        "INSERT INTO customer_tags (customer_id, tag) VALUES ($1, $2)"
                        " ON CONFLICT DO NOTHING",
                        c.id,
                        tag,
                    )
                if c.owner:
                    await conn.execute(
                        "INSERT INTO customer_owners (customer_id, agent_id) VALUES ($1, $2)"
                        " ON CONFLICT DO NOTHING",
                        c.id,
                        c.owner,
                    )
                for o in c.orders:
                    await conn.execute(
                        "INSERT INTO orders (customer_id, reference, product, amount, status,"
                        " ordered_at) VALUES ($1, $2, $3, $4, $5, $6)",
                        c.id, o["reference"], o["product"], o["amount"], o["status"],
                        o["ordered_at"],
                    )  # fmt: skip
                for k in c.contracts:
                    await conn.execute(
                        "INSERT INTO contracts (customer_id, kind, reference, status, stage,"
                        " progress_pct, total_amount, paid_amount, started_at, due_at)"
                        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                        c.id, k["kind"], k["reference"], k["status"], k["stage"],
                        k["progress_pct"], k["total_amount"], k["paid_amount"],
                        k["started_at"], k["due_at"],
                    )  # fmt: skip
                for m in c.marketing:
                    await conn.execute(
                        "INSERT INTO marketing_events (customer_id, campaign, channel,"
                        " coupon_code, status, occurred_at) VALUES ($1, $2, $3, $4, $5, $6)",
                        c.id, m["campaign"], m["channel"], m["coupon_code"], m["status"],
                        m["occurred_at"],
                    )  # fmt: skip
                for h in c.history:
                    await conn.execute(
                        "INSERT INTO service_history (customer_id, kind, occurred_at, agent_id,"
                        " summary, outcome, disposition) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        c.id, h["kind"], h["occurred_at"], h["agent_id"], h["summary"],
                        h["outcome"], h["disposition"],
                    )  # fmt: skip
    return added


async def seed_agents(pool: asyncpg.Pool[Any]) -> list[tuple[str, str]]:
    """Create the demo agents, or give existing ones a fresh token; return (id, token)."""
    tokens = []
    for agent in AGENTS:
        token = await rotate_token(pool, agent.id)
        if token is None:
            token = await create_agent(pool, agent.id, agent.name, agent.role, agent.device)
        tokens.append((agent.id, token))
    return tokens


async def seed_rules(pool: asyncpg.Pool[Any]) -> int:
    """Add the demo rules that do not exist yet (a user's own edits are kept)."""
    store = RuleStore(pool)
    existing = {r.name for r in await store.list_rules()}
    added = 0
    for spec in RULES:
        if spec.name in existing:
            continue
        rule = Rule(
            name=spec.name,
            position=0,
            queue=spec.queue,
            priority=spec.priority,
            tags_any=spec.tags_any,
            unknown_caller=spec.unknown_caller,
            caller_prefix=spec.caller_prefix,
            attr=parse_attr(spec.attr) if spec.attr else None,
        )
        try:
            await store.add_rule(rule)
            added += 1
        except ValidationError:
            continue  # created meanwhile by someone else
    return added


async def seed(pool: asyncpg.Pool[Any]) -> list[tuple[str, str]]:
    """Everything the demo needs; returns the agents' fresh tokens. Agents come first:
    customers name them as owners."""
    tokens = await seed_agents(pool)
    await seed_customers(pool, customers())
    await seed_rules(pool)
    return tokens
