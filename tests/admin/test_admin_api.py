"""The admin API's frame over a real aiohttp server on loopback and real PostgreSQL: bearer
authentication, malformed bodies, a database that is down."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.config import build_config
from bridge.crm.agents import create_agent
from tests.admin.api import Api, audit_rows, mount_admin_api

# --- authentication ---------------------------------------------------------------------


async def test_missing_or_malformed_authorization_is_401_json(
    client: TestClient[Any, Any], tokens: dict[str, str]
) -> None:
    for headers in (
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {tokens['admin']}"},
        {"Authorization": tokens["admin"]},
    ):
        resp = await client.get("/api/rules", headers=headers)
        assert resp.status == 401, headers
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        body = await resp.json()
        assert body["status"] == 401 and body["error"] == "unauthorized" and body["reason"]


@pytest.mark.parametrize(
    "token",
    ["wrong-token-wrong-token-wrong", "x" * 4000, "' OR 1=1 --", "<script>", "tok\x00en"],
)
async def test_wrong_token_is_401(api: Api, token: str) -> None:
    status, body = await api.call("GET", "/api/rules", token=token.replace("\x00", "%00"))
    assert status == 401 and body["error"] == "unauthorized"


async def test_non_admin_roles_are_403(api: Api, tokens: dict[str, str]) -> None:
    for role in ("agent", "supervisor"):
        status, body = await api.call("GET", "/api/agents", token=tokens[role])
        assert status == 403 and body["error"] == "forbidden"
        status, _ = await api.call(
            "POST", "/api/rules", {"name": "x", "queue": "q"}, token=tokens[role]
        )
        assert status == 403


async def test_deactivated_admin_is_401(pool: asyncpg.Pool[Any], api: Api) -> None:
    other = await create_agent(pool, "boss2", "Other Admin", "admin", "9002")
    assert (await api.call("GET", "/api/rules", token=other))[0] == 200
    status, _ = await api.call("DELETE", "/api/agents/boss2")
    assert status == 200
    status, _ = await api.call("GET", "/api/rules", token=other)
    assert status == 401


async def test_unknown_route_and_method_answer_json_after_auth(
    client: TestClient[Any, Any], api: Api
) -> None:
    resp = await client.get("/api/nothing")
    assert resp.status == 401  # no route discovery without a token
    status, body = await api.call("GET", "/api/nothing")
    assert status == 404 and body["error"] == "not_found"
    status, body = await api.call("PATCH", "/api/agents")
    assert status == 405 and body["error"] == "method_not_allowed"


# --- malformed bodies -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "error"),
    [
        (b"not json", 400, "invalid_json"),
        (b"\xff\xfe\x00{", 400, "invalid_json"),
        (b"[]", 400, "invalid_json"),
        (b'"text"', 400, "invalid_json"),
        (b'{"name": NaN}', 400, "invalid_json"),
        (b"[" * 50_000, 400, "invalid_json"),
        (b'{"name": "' + b"x" * (70 * 1024) + b'"}', 413, "body_too_large"),
        (b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}', 413, "body_too_large"),
    ],
)
async def test_malformed_body_is_refused(
    pool: asyncpg.Pool[Any], api: Api, raw: bytes, status: int, error: str
) -> None:
    for path in ("/api/rules", "/api/agents", "/api/customers"):
        got, body = await api.call("POST", path, raw=raw)
        assert (got, body["error"]) == (status, error), (path, body)
        if status == 400:
            assert body["field"] == "body"
    assert await audit_rows(pool) == []


async def test_wrong_content_type_is_415(api: Api) -> None:
    status, body = await api.call(
        "POST",
        "/api/rules",
        raw=b'{"name": "a", "queue": "b"}',
        headers={"Content-Type": "text/plain"},
    )
    assert status == 415 and body["error"] == "unsupported_media_type"


async def test_database_down_is_503_json(database_url: str) -> None:
    from bridge.db.pool import create_pool

    dead = await create_pool(database_url, min_size=1, max_size=2)
    await dead.close()
    app = web.Application()
    mount_admin_api(app, dead, build_config({}, {}, runtime=False))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        resp = await client.get("/api/rules", headers={"Authorization": "Bearer " + "a" * 43})
        assert resp.status == 503
        body = await resp.json()
        assert body["error"] == "unavailable" and "retry" in body["reason"]
