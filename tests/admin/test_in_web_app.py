"""The admin API and the webhook mounted on the bridge's own web app (bridge/web/factory.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from bridge.config import build_config
from bridge.crm.agents import create_agent
from bridge.crm.webhook import SIGNATURE_HEADER, WebhookDeps, setup_webhook_routes, sign
from bridge.web.factory import make_web_app
from tests.admin.api import mount_admin_api


@pytest.fixture
async def client(pool: asyncpg.Pool[Any]) -> AsyncIterator[TestClient[Any, Any]]:
    config = build_config({"webhook": {"secret": "k"}}, {}, runtime=False)
    app = make_web_app(
        registry=CollectorRegistry(),
        setups=[
            lambda app: mount_admin_api(app, pool, config),
            lambda app: setup_webhook_routes(app, WebhookDeps(pool=pool, config=config)),
        ],
    )
    c: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await c.start_server()
    try:
        yield c
    finally:
        await c.close()


async def test_admin_api_on_the_bridge_app_answers_json_with_security_headers(
    pool: asyncpg.Pool[Any], client: TestClient[Any, Any]
) -> None:
    token = await create_agent(pool, "boss", "Boss", "admin", "9000")
    auth = {"Authorization": f"Bearer {token}"}
    resp = await client.get("/api/rules")
    assert resp.status == 401 and (await resp.json())["error"] == "unauthorized"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    resp = await client.post("/api/rules", json={"name": "vip", "queue": "senior"}, headers=auth)
    assert resp.status == 201
    assert "Content-Security-Policy" in resp.headers
    resp = await client.get("/api/rules", headers=auth)
    assert [r["name"] for r in (await resp.json())["rules"]] == ["vip"]
    resp = await client.delete("/api/rules", headers=auth)
    assert resp.status == 405 and (await resp.json())["error"] == "method_not_allowed"
    resp = await client.get("/healthz")
    assert resp.status == 200


async def test_webhook_on_the_bridge_app(
    pool: asyncpg.Pool[Any], client: TestClient[Any, Any]
) -> None:
    import time

    body = json.dumps(
        {"changes": [{"type": "customer.upsert", "updated_at": int(time.time()) - 5,
                      "customer": {"id": "c-1", "name": "Ann"}}]}
    ).encode()  # fmt: skip
    resp = await client.post(
        "/crm/webhook",
        data=body,
        headers={SIGNATURE_HEADER: sign("k", body, int(time.time())),
                 "Content-Type": "application/json"},
    )  # fmt: skip
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["applied"] == 1
    assert await pool.fetchval("SELECT name FROM customers WHERE id = 'c-1'") == "Ann"
