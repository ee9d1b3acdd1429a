"""The agent roster: every agent in memory, current through LISTEN/NOTIFY, never older."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from bridge.crm import agents
from bridge.crm.agents import hash_token
from bridge.crm.roster import AgentRoster


async def changed_for(roster: AgentRoster, agent_id: str) -> asyncio.Event:
    event = asyncio.Event()
    roster.on_change(lambda changed: changed == agent_id and event.set())
    return event


async def test_devices_map_to_active_agents_only(
    pool: asyncpg.Pool[Any], roster: AgentRoster
) -> None:
    seen = await changed_for(roster, "a1")
    await agents.create_agent(pool, "a1", "Ann", device="1001")
    async with asyncio.timeout(10):
        await seen.wait()
    assert roster.agent_id_of("1001") == "a1"
    seen.clear()
    await agents.set_active(pool, "a1", False)
    async with asyncio.timeout(10):
        await seen.wait()
    assert roster.agent_id_of("1001") is None
    assert roster.by_device("nope") is None


async def test_authenticate_knows_a_token_before_its_notification_arrives(
    pool: asyncpg.Pool[Any], roster: AgentRoster
) -> None:
    token = await agents.create_agent(pool, "a2", "Bea", device="1002")
    found = await roster.authenticate(token)  # may run before NOTIFY: the database answers
    assert found is not None and found[0].id == "a2" and found[1] == hash_token(token)
    assert roster.session_valid("a2", hash_token(token))
    for hostile in ("", "x" * 600, "a\r\nb", "'; DROP TABLE agents;--", "\x00" * 30):
        assert await roster.authenticate(hostile) is None


async def test_an_older_row_never_replaces_a_newer_one(
    pool: asyncpg.Pool[Any], roster: AgentRoster
) -> None:
    await agents.create_agent(pool, "a3", "Cy", device="1003")
    old = await pool.fetchrow("SELECT * FROM agents WHERE id = 'a3'")
    new_token = await agents.rotate_token(pool, "a3")
    assert new_token is not None
    new = await pool.fetchrow("SELECT * FROM agents WHERE id = 'a3'")
    assert new["version"] == old["version"] + 1
    roster._apply(new)
    roster._apply(old)  # a slow read arriving late
    assert roster.session_valid("a3", hash_token(new_token))
    assert not roster.session_valid("a3", old["token_hash"])


async def test_a_lost_listener_connection_reloads_everything(
    pool: asyncpg.Pool[Any], roster: AgentRoster
) -> None:
    seen = await changed_for(roster, "a4")
    await agents.create_agent(pool, "a4", "Di", device="1004")
    async with asyncio.timeout(10):
        await seen.wait()
    roster._remove("a4")  # as if its notification had been lost
    assert roster.agent_id_of("1004") is None
    seen.clear()
    generation = roster._listener.generation
    # the listener's backend dies; it re-listens and tells the roster to reload
    pid = roster._listener.backend_pid
    await pool.execute("SELECT pg_terminate_backend($1)", pid)
    await roster._listener.wait_listening(after_generation=generation)
    async with asyncio.timeout(10):
        await seen.wait()
    assert roster.agent_id_of("1004") == "a4"
