"""The agents in the admin API, over a real aiohttp server and real PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from bridge.crm.agents import authenticate
from tests.admin.api import Api, audit_rows

# --- agents -----------------------------------------------------------------------------


async def test_agent_create_list_deactivate_and_token(pool: asyncpg.Pool[Any], api: Api) -> None:
    status, created = await api.call(
        "POST", "/api/agents", {"id": "2001", "name": "  Zoë 2001 ", "role": "supervisor"}
    )
    assert status == 201
    token = created.pop("token")
    assert created == {
        "id": "2001",
        "name": "Zoë 2001",
        "role": "supervisor",
        "device": "2001",
        "active": True,
        "pbx": "",  # a single PBX
    }
    agent = await authenticate(pool, token)
    assert agent is not None and agent.id == "2001"
    stored = await pool.fetchval("SELECT token_hash FROM agents WHERE id = '2001'")
    assert token not in stored
    _, listed = await api.call("GET", "/api/agents")
    assert [a["id"] for a in listed["agents"]] == ["2001", "3001", "boss", "sup"]
    assert all("token" not in a and "token_hash" not in a for a in listed["agents"])
    assert token not in json.dumps(listed)
    status, updated = await api.call("PATCH", "/api/agents/2001", {"device": "2010"})
    assert status == 200 and updated["device"] == "2010"
    status, new = await api.call("POST", "/api/agents/2001/token")
    assert status == 200 and new["token"] != token
    assert await authenticate(pool, token) is None
    assert await authenticate(pool, new["token"]) is not None
    status, off = await api.call("DELETE", "/api/agents/2001")
    assert status == 200 and off["active"] is False
    assert await authenticate(pool, new["token"]) is None
    audit = await audit_rows(pool)
    assert [a["action"] for a in audit] == [
        "agent.create",
        "agent.update",
        "agent.token",
        "agent.deactivate",
    ]
    assert all(new["token"] not in json.dumps(dict(a)) for a in audit)
    assert audit[3]["before"]["active"] is True and audit[3]["after"]["active"] is False


async def test_agent_errors(api: Api) -> None:
    status, body = await api.call("POST", "/api/agents", {"id": "3001", "name": "Dup"})
    assert status == 409 and body["field"] == "id"
    status, body = await api.call(
        "POST", "/api/agents", {"id": "3009", "name": "X", "device": "3001"}
    )
    assert status == 409 and body["field"] == "device" and "3001" in body["reason"]
    for bad, field in [
        ({"name": "No id"}, "id"),
        ({"id": "a b", "name": "X"}, "id"),
        ({"id": "3002"}, "name"),
        ({"id": "3002", "name": "Evil\r\nName"}, "name"),
        ({"id": "3002", "name": "X", "role": "root"}, "role"),
        ({"id": "3002", "name": "X", "device": "PJSIP/3001"}, "device"),
        ({"id": "3002", "name": "X", "token": "mine"}, "token"),
    ]:
        status, body = await api.call("POST", "/api/agents", bad)
        assert (status, body["field"]) == (400, field), bad
    status, body = await api.call("DELETE", "/api/agents/boss")
    assert status == 409
    status, body = await api.call("PATCH", "/api/agents/boss", {"role": "agent"})
    assert status == 409
    status, body = await api.call("DELETE", "/api/agents/nobody")
    assert status == 404
