"""Who may read the wallboard's figures and create customers from the desk, and what a
refused request leaves behind (nothing)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import pytest

from bridge.config import build_config
from bridge.crm.agents import create_agent
from bridge.pops.agent_routes import AgentDeps, setup_agent_routes
from bridge.tracker.tracker import CallTracker
from bridge.wallboard.board import WallBoard
from bridge.web import HttpServer, make_web_app
from tests.admin.api import mount_admin_api
from tests.crm.fixture_crm import load_trace_crm

CONFIG = build_config({"http": {"port": 0}}, {}, runtime=False)


@dataclass
class Site:
    url: str
    tokens: dict[str, str]
    pool: asyncpg.Pool[Any]


@pytest.fixture
async def site(pool: asyncpg.Pool[Any]) -> AsyncIterator[Site]:
    tokens = await load_trace_crm(pool)
    tokens["boss"] = await create_agent(pool, "boss", "Supervisor", "supervisor", "9001")
    tokens["root"] = await create_agent(pool, "root", "Admin", "admin", "9002")
    board = WallBoard(CallTracker(CONFIG.device_regex), pool=pool, queues=["support", "senior"])
    await board.seed()
    app = make_web_app(
        setups=[
            lambda app: setup_agent_routes(app, AgentDeps(pool, 8765)),
            lambda app: mount_admin_api(app, pool, CONFIG, board),
        ]
    )
    server = HttpServer(app, "127.0.0.1", 0)
    await server.start()
    try:
        yield Site(server.url, tokens, pool)
    finally:
        await server.stop()


async def call(
    site: Site, method: str, path: str, token: str | None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body)
    if data is not None:
        headers["Content-Type"] = "application/json"
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, site.url + path, data=data, headers=headers) as r,
    ):
        return r.status, await r.json()


async def test_queue_figures_are_for_supervisors_and_admins_only(site: Site) -> None:
    assert (await call(site, "GET", "/api/queues", None))[0] == 401
    assert (await call(site, "GET", "/api/queues", "wrong-token"))[0] == 401
    status, body = await call(site, "GET", "/api/queues", site.tokens["1001"])
    assert status == 403 and "supervisor" in body["reason"]
    for who in ("boss", "root"):
        status, body = await call(site, "GET", "/api/queues", site.tokens[who])
        assert status == 200
        assert body["sla_s"] == 20
        assert [q["queue"] for q in body["queues"]] == ["senior", "support"]
        assert set(body["queues"][0]) >= {
            "queue", "waiting", "longest_wait_s", "agents", "answered", "abandoned", "sla_pct"
        }  # fmt: skip


async def test_a_supervisor_is_still_not_an_admin(site: Site) -> None:
    status, _ = await call(site, "GET", "/api/agents", site.tokens["boss"])
    assert status == 403
    status, _ = await call(site, "POST", "/api/queues", site.tokens["boss"], {})
    assert status in (403, 405)


async def test_an_agent_creates_an_unknown_caller_as_a_customer_and_it_is_audited(
    site: Site,
) -> None:
    body = {"name": "Dana <b>Stranger</b>", "phone": "+1 555 987 0001", "tags": ["vip", "new"]}
    status, created = await call(site, "POST", "/agent/api/customers", site.tokens["1001"], body)
    assert status == 201
    assert created["name"] == "Dana <b>Stranger</b>"
    assert created["phones"] == ["+15559870001"] and created["tags"] == ["new", "vip"]
    row = await site.pool.fetchrow(
        "SELECT c.name FROM customers c JOIN customer_phones p ON p.customer_id = c.id"
        " WHERE p.e164 = '+15559870001'"
    )
    assert row["name"] == "Dana <b>Stranger</b>"
    audit = await site.pool.fetchrow(
        "SELECT actor, action, target_id FROM audit_log WHERE action = 'customer.create'"
    )
    assert tuple(audit) == ("1001", "customer.create", created["id"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x\r\nInjected", "phone": "+15559870002"}, "name"),
        ({"name": "", "phone": "+15559870002"}, "name"),
        ({"name": "N" * 5000, "phone": "+15559870002"}, "name"),
        ({"name": "Nul\x00", "phone": "+15559870002"}, "name"),
        ({"name": "Ok", "phone": "not a number"}, "phone"),
        ({"name": "Ok", "phone": 15559870002}, "phone"),
        ({"name": "Ok", "phone": "+15559870002", "tags": ["<script>"]}, "tags[0]"),
        ({"name": "Ok", "phone": "+15559870002", "tags": "vip"}, "tags"),
        ({"name": "Ok", "phone": "+15559870002", "owner": "1001"}, "owner"),
    ],
)
async def test_a_bad_customer_is_refused_naming_the_field_and_nothing_is_written(
    site: Site, body: dict[str, Any], field: str
) -> None:
    status, answer = await call(site, "POST", "/agent/api/customers", site.tokens["1001"], body)
    assert status == 400 and answer["field"] == field
    assert await site.pool.fetchval("SELECT count(*) FROM customers") == 3
    assert await site.pool.fetchval("SELECT count(*) FROM audit_log") == 0


async def test_a_known_number_is_not_taken_over(site: Site) -> None:
    body = {"name": "Mallory", "phone": "+15551230001"}  # Alice's
    status, answer = await call(site, "POST", "/agent/api/customers", site.tokens["1001"], body)
    assert status == 409 and "already belongs" in answer["reason"]
    names = await site.pool.fetch("SELECT name FROM customers ORDER BY name")
    assert "Mallory" not in [r["name"] for r in names]


async def test_creating_needs_an_agent_token(site: Site) -> None:
    body = {"name": "Dana", "phone": "+15559870001"}
    assert (await call(site, "POST", "/agent/api/customers", None, body))[0] == 401
    assert (await call(site, "POST", "/agent/api/customers", "nope", body))[0] == 401
    assert (await call(site, "POST", "/agent/api/customers", site.tokens["1001"], b"\xff"))[
        0
    ] == 400
    assert await site.pool.fetchval("SELECT count(*) FROM customers") == 3


async def test_my_calls_today_lists_only_my_own_calls(site: Site) -> None:
    now = datetime.now(UTC)
    for cid, agent in (("c-mine", "1001"), ("c-theirs", "1002")):
        await site.pool.execute(
            "INSERT INTO call_records (call_id, caller, customer_id, queue, agents, started_at,"
            " ended_at, talk_s, outcome) VALUES ($1, '+15551230001', 'cust-alice', 'support',"
            " $2::jsonb, $3, $3, 42, 'answered')",
            cid,
            [{"agent": agent, "talk_s": 42, "disposition": "resolved"}],
            now,
        )
    status, body = await call(site, "GET", "/agent/api/calls/today", site.tokens["1001"])
    assert status == 200
    assert [(c["call_id"], c["customer"], c["disposition"]) for c in body["calls"]] == [
        ("c-mine", "Alice Chen", "resolved")
    ]
    assert (await call(site, "GET", "/agent/api/calls/today", None))[0] == 401


async def test_the_wallboard_page_is_static_text_under_the_strict_policy(site: Site) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(site.url + "/wallboard") as r:
            assert r.status == 200 and "script-src 'self'" in r.headers["Content-Security-Policy"]
            html = await r.text()
        assert '<script src="/wallboard/static/wallboard.js"' in html and "<script>" not in html
        async with s.get(site.url + "/wallboard/static/wallboard.js") as r:
            assert r.status == 200 and "innerHTML" not in await r.text()
        async with s.get(site.url + "/wallboard/static/..%2Fagent.py") as r:
            assert r.status == 404
