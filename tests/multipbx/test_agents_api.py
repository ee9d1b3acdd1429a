"""The agents in the admin API with two PBXs: `pbx` is validated against the `[[pbx]]`
names, defaults to the first, is shown in GET and audited, and a device conflicts only with
the same device on the same PBX. With a single PBX `pbx` is always ''."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.config import build_config
from tests.admin.api import Api, audit_rows, mount_admin_api

PBX_CONFIG = build_config(
    {"pbx": [{"name": name, "ami": {"username": "u", "secret": "s"}} for name in ("east", "west")]},
    {},
    runtime=False,
)


@pytest.fixture
async def two_pbx_api(pool: asyncpg.Pool[Any], tokens: dict[str, str]) -> AsyncIterator[Api]:
    app = web.Application()
    mount_admin_api(app, pool, PBX_CONFIG)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    try:
        yield Api(client, tokens["admin"])
    finally:
        await client.close()


async def test_an_agent_gets_the_first_pbx_unless_it_names_one(
    pool: asyncpg.Pool[Any], two_pbx_api: Api
) -> None:
    api = two_pbx_api
    status, east = await api.call(
        "POST", "/api/agents", {"id": "e1", "name": "E", "device": "1001"}
    )
    assert status == 201 and east["pbx"] == "east"
    status, west = await api.call(
        "POST", "/api/agents", {"id": "w1", "name": "W", "device": "1001", "pbx": "west"}
    )
    assert status == 201 and west["pbx"] == "west"  # the same extension on the other PBX
    _, listed = await api.call("GET", "/api/agents")
    assert {a["id"]: a["pbx"] for a in listed["agents"]}.items() >= {
        "e1": "east",
        "w1": "west",
    }.items()
    _, one = await api.call("GET", "/api/agents/w1")
    assert one["pbx"] == "west" and one["device"] == "1001"
    devices = dict(await pool.fetch("SELECT id, pbx_device FROM agents WHERE id IN ('e1', 'w1')"))
    assert devices == {"e1": "east:1001", "w1": "west:1001"}


async def test_a_device_conflicts_only_on_its_own_pbx(
    pool: asyncpg.Pool[Any], two_pbx_api: Api
) -> None:
    api = two_pbx_api
    for aid, pbx, device in (("e1", "east", "1001"), ("w1", "west", "1002")):
        body = {"id": aid, "name": aid, "device": device, "pbx": pbx}
        assert (await api.call("POST", "/api/agents", body))[0] == 201
    status, body = await api.call(
        "POST", "/api/agents", {"id": "e2", "name": "X", "device": "1001", "pbx": "east"}
    )
    assert status == 409 and body["field"] == "device" and "east" in body["reason"]
    # moving w1 to east's 1001 conflicts; to west's 1001 (free there) does not
    status, body = await api.call("PATCH", "/api/agents/w1", {"device": "1001", "pbx": "east"})
    assert status == 409 and body["field"] == "device"
    status, moved = await api.call("PATCH", "/api/agents/w1", {"device": "1001"})
    assert status == 200 and (moved["pbx"], moved["device"]) == ("west", "1001")
    status, moved = await api.call("PATCH", "/api/agents/e1", {"pbx": "west", "device": "1003"})
    assert status == 200 and moved["pbx"] == "west"
    audit = [a for a in await audit_rows(pool) if a["target_id"] in ("e1", "w1")]
    assert [a["action"] for a in audit] == [
        "agent.create",
        "agent.create",
        "agent.update",
        "agent.update",
    ]
    assert audit[3]["before"]["pbx"] == "east" and audit[3]["after"]["pbx"] == "west"


@pytest.mark.parametrize("pbx", ["north", "", "East", None, 1, ["east"], "east\r\n", "a" * 500])
async def test_a_pbx_that_is_not_configured_is_refused(
    pool: asyncpg.Pool[Any], two_pbx_api: Api, pbx: Any
) -> None:
    body = {"id": "x1", "name": "X", "device": "1001", "pbx": pbx}
    status, answer = await two_pbx_api.call("POST", "/api/agents", body)
    assert (status, answer["field"]) == (400, "pbx")
    status, answer = await two_pbx_api.call("PATCH", "/api/agents/3001", {"pbx": pbx})
    assert (status, answer["field"]) == (400, "pbx")
    assert await pool.fetchval("SELECT count(*) FROM agents WHERE id = 'x1'") == 0
    assert await pool.fetchval("SELECT pbx FROM agents WHERE id = '3001'") == ""


async def test_a_single_pbx_takes_only_an_empty_pbx(api: Api) -> None:
    status, created = await api.call("POST", "/api/agents", {"id": "s1", "name": "S", "pbx": ""})
    assert status == 201 and created["pbx"] == ""
    status, answer = await api.call("PATCH", "/api/agents/s1", {"pbx": "east"})
    assert (status, answer["field"]) == (400, "pbx")
