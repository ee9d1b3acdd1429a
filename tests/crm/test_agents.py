"""Agents: tokens stored as hashes, lookup by token and by device, validation."""

from __future__ import annotations

import hashlib
from typing import Any

import asyncpg
import pytest

from bridge.crm.agents import (
    Agent,
    agent_by_device,
    authenticate,
    create_agent,
    get_agent,
    list_agents,
    owner_of,
    rotate_token,
    set_active,
)
from bridge.errors import ValidationError
from tests.crm.fixture_crm import ALICE, load_trace_crm


async def test_token_authenticates_and_only_its_hash_is_stored(pool: asyncpg.Pool[Any]) -> None:
    token = await create_agent(pool, "1001", "Ann", "supervisor", "1001")
    assert len(token) >= 40
    assert await authenticate(pool, token) == Agent("1001", "Ann", "supervisor", "1001", True)
    stored = await pool.fetchval("SELECT token_hash FROM agents WHERE id = '1001'")
    assert stored == hashlib.sha256(token.encode()).hexdigest() and token not in stored
    other = await create_agent(pool, "1002", "Bo")
    assert other != token
    assert (await authenticate(pool, other)) == Agent("1002", "Bo", "agent", "1002", True)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "x",
        "a" * 43,
        "A" * 10_000,
        "tok\r\nen" * 5,
        "\x00" * 43,
        "' OR '1'='1' --  xxxxxx",
        None,
    ],
)
async def test_wrong_or_hostile_tokens_do_not_authenticate(
    pool: asyncpg.Pool[Any], bad: Any
) -> None:
    await create_agent(pool, "1001", "Ann")
    assert await authenticate(pool, bad) is None


async def test_deactivated_agent_and_rotated_token_stop_working(pool: asyncpg.Pool[Any]) -> None:
    token = await create_agent(pool, "1001", "Ann")
    assert await set_active(pool, "1001", False)
    assert await authenticate(pool, token) is None
    assert await set_active(pool, "1001", True)
    new = await rotate_token(pool, "1001")
    assert new is not None and await authenticate(pool, token) is None
    assert await authenticate(pool, new) is not None
    assert await rotate_token(pool, "nobody") is None


async def test_lookup_by_device_id_and_owner(pool: asyncpg.Pool[Any]) -> None:
    await load_trace_crm(pool)
    await create_agent(pool, "ann@example.com", "Ann", device="3001")
    assert await agent_by_device(pool, "3001") == Agent(
        "ann@example.com", "Ann", "agent", "3001", True
    )
    assert (await agent_by_device(pool, "2001")) == Agent("2001", "Agent 2001", "agent", "2001")
    assert await agent_by_device(pool, "9999") is None
    assert await agent_by_device(pool, "2001\r\n") is None
    assert (await get_agent(pool, "1002")) is not None and await get_agent(pool, "x y") is None
    assert [a.id for a in await list_agents(pool)] == [
        "1001",
        "1002",
        "2001",
        "2002",
        "ann@example.com",
    ]
    assert await owner_of(pool, ALICE) is None
    await pool.execute("INSERT INTO customer_owners VALUES ($1, '2002')", ALICE)
    owner = await owner_of(pool, ALICE)
    assert owner is not None and owner.id == "2002"
    assert await owner_of(pool, "x\x00y") is None


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("", "Ann"), "id"),
        (("bad id", "Ann"), "id"),
        (("1001\r\n", "Ann"), "id"),
        (("x" * 65, "Ann"), "id"),
        (("1001", ""), "name"),
        (("1001", "   "), "name"),
        (("1001", "A\r\nB"), "name"),
        (("1001", "N" * 201), "name"),
        (("1001", "Ann", "root"), "role"),
        (("1001", "Ann", "agent", "PJSIP/1001"), "device"),
        (("1001", "Ann", "agent", ""), "device"),
    ],
)
async def test_create_agent_validation(
    pool: asyncpg.Pool[Any], args: tuple[str, ...], field: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        await create_agent(pool, *args)
    assert exc.value.field == field
    assert await pool.fetchval("SELECT count(*) FROM agents") == 0


async def test_duplicates_are_validation_errors(pool: asyncpg.Pool[Any]) -> None:
    await create_agent(pool, "1001", "Ann")
    with pytest.raises(ValidationError) as exc:
        await create_agent(pool, "1001", "Again", device="1009")
    assert exc.value.field == "id"
    with pytest.raises(ValidationError) as exc:
        await create_agent(pool, "1002", "Bo", device="1001")
    assert exc.value.field == "device"
