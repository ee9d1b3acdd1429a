"""The admin API under /api/ as the plugins mount it, for tests that need only it (no hub,
no AMI link): the rules, calls, queues, agents, customers and audit routes of their
features' plugins, and POST /api/dial (503 unless the test sets up the dial routes).

`Api` and the fixtures `tokens`, `client` and `api` serve the admin API tests of every
feature (import them into the test module)."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.config import Config, build_config
from bridge.crm.agents import create_agent
from bridge.crm.plugin import CRM_API
from bridge.dial.routes import setup_admin_dial
from bridge.plugin import Context, Http
from bridge.records.plugin import RECORDS
from bridge.routing.plugin import RULES
from bridge.wallboard.board import WallBoard
from bridge.wallboard.plugin import WALL_BOARD, WALLBOARD
from bridge.web.admin_api import make_admin_api
from bridge.web.auth import ADMIN_TOKENS, AdminAuth


def mount_admin_api(
    app: web.Application, pool: asyncpg.Pool[Any], config: Config, board: WallBoard | None = None
) -> web.Application:
    ctx = Context(config, pool)
    assert CRM_API.prepare is not None
    CRM_API.prepare(ctx)
    if board is not None:
        ctx.provide(WALL_BOARD, board)
    api = make_admin_api(AdminAuth(ctx.need(ADMIN_TOKENS)))
    http = Http(app, api)
    for plugin in (RULES, RECORDS, WALLBOARD, CRM_API):
        assert plugin.routes is not None
        plugin.routes(http, ctx)
    setup_admin_dial(api)
    app.add_subapp("/api/", api)
    return api


class Api:
    """A client with the admin's token, answering (status, JSON) and checking it is JSON."""

    def __init__(self, client: TestClient[Any, Any], token: str) -> None:
        self.client = client
        self.token = token

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        hdrs = {"Authorization": f"Bearer {self.token if token is None else token}"}
        data: Any = None
        if raw is not None:
            data = io.BytesIO(raw) if len(raw) > 512 * 1024 else raw
            hdrs["Content-Type"] = "application/json"
        elif body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        resp = await self.client.request(method, path, data=data, headers=hdrs)
        assert resp.content_type == "application/json", await resp.text()
        return resp.status, await resp.json()


@pytest.fixture
async def tokens(pool: asyncpg.Pool[Any]) -> dict[str, str]:
    return {
        "admin": await create_agent(pool, "boss", "The Admin", "admin", "9000"),
        "supervisor": await create_agent(pool, "sup", "Sue", "supervisor", "9001"),
        "agent": await create_agent(pool, "3001", "Agent 3001", "agent", "3001"),
    }


@pytest.fixture
async def client(pool: asyncpg.Pool[Any]) -> AsyncIterator[TestClient[Any, Any]]:
    config = build_config({}, {}, runtime=False)
    app = web.Application()
    mount_admin_api(app, pool, config)
    c: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await c.start_server()
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
def api(client: TestClient[Any, Any], tokens: dict[str, str]) -> Api:
    return Api(client, tokens["admin"])


async def audit_rows(pool: asyncpg.Pool[Any]) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT actor, action, target_type, target_id, before, after FROM audit_log ORDER BY id"
    )
