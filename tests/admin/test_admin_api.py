"""The admin API over a real aiohttp server on loopback and real PostgreSQL."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.config import build_config
from bridge.crm.agents import authenticate, create_agent
from tests.admin.api import mount_admin_api
from tests.admin.routing_probe import running_router
from tests.crm.fixture_crm import BOB, load_trace_crm


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


async def _audit(pool: asyncpg.Pool[Any]) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT actor, action, target_type, target_id, before, after FROM audit_log ORDER BY id"
    )


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
    assert await _audit(pool) == []


async def test_wrong_content_type_is_415(api: Api) -> None:
    status, body = await api.call(
        "POST",
        "/api/rules",
        raw=b'{"name": "a", "queue": "b"}',
        headers={"Content-Type": "text/plain"},
    )
    assert status == 415 and body["error"] == "unsupported_media_type"


# --- rules ------------------------------------------------------------------------------


async def test_rule_lifecycle_with_positions_and_audit(pool: asyncpg.Pool[Any], api: Api) -> None:
    status, rule = await api.call(
        "POST",
        "/api/rules",
        {"name": "vip", "queue": "senior", "priority": 5, "tags_any": ["vip"]},
    )
    assert status == 201
    assert rule == {
        "name": "vip",
        "position": 1,
        "queue": "senior",
        "priority": 5,
        "tags_any": ["vip"],
        "tags_all": [],
        "unknown_caller": False,
        "prefix": None,
        "did": None,
        "when": None,
        "attr": None,
        "enabled": True,
    }
    await api.call("POST", "/api/rules", {"name": "china", "queue": "cn", "prefix": "+86"})
    status, first = await api.call(
        "POST",
        "/api/rules",
        {"name": "night", "queue": "overflow", "when": "mon-fri 22:00-06:00", "position": 1},
    )
    assert status == 201 and first["position"] == 1
    _, listed = await api.call("GET", "/api/rules")
    assert [(r["name"], r["position"]) for r in listed["rules"]] == [
        ("night", 1),
        ("vip", 2),
        ("china", 3),
    ]
    status, moved = await api.call("PATCH", "/api/rules/night", {"position": 3, "priority": 2})
    assert status == 200 and moved["position"] == 3 and moved["priority"] == 2
    assert moved["when"] == first["when"]  # PATCH keeps what it was not given
    status, replaced = await api.call(
        "PUT", "/api/rules/vip", {"queue": "gold", "attr": "lifetime_value>=10000"}
    )
    assert status == 200
    assert replaced["tags_any"] == [] and replaced["attr"] and replaced["queue"] == "gold"
    status, got = await api.call("GET", "/api/rules/vip")
    assert got == replaced
    status, deleted = await api.call("DELETE", "/api/rules/china")
    assert status == 200 and deleted["deleted"]["name"] == "china"
    _, listed = await api.call("GET", "/api/rules")
    assert [(r["name"], r["position"]) for r in listed["rules"]] == [("vip", 1), ("night", 2)]
    status, body = await api.call("DELETE", "/api/rules/china")
    assert status == 404 and body["error"] == "not_found"
    audit = await _audit(pool)
    assert [(a["actor"], a["action"], a["target_id"]) for a in audit] == [
        ("boss", "rule.create", "vip"),
        ("boss", "rule.create", "china"),
        ("boss", "rule.create", "night"),
        ("boss", "rule.update", "night"),
        ("boss", "rule.update", "vip"),
        ("boss", "rule.delete", "china"),
    ]
    assert audit[3]["before"]["position"] == 1 and audit[3]["after"]["position"] == 3
    assert audit[5]["after"] is None and audit[5]["before"]["queue"] == "cn"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"queue": "q"}, "name"),
        ({"name": "r"}, "queue"),
        ({"name": 5, "queue": "q"}, "name"),
        ({"name": "bad name", "queue": "q"}, "name"),
        ({"name": "r", "queue": "q; DROP TABLE routing_rules"}, "queue"),
        ({"name": "r", "queue": "q", "priority": "high"}, "priority"),
        ({"name": "r", "queue": "q", "priority": True}, "priority"),
        ({"name": "r", "queue": "q", "position": 0}, "position"),
        ({"name": "r", "queue": "q", "position": "1"}, "position"),
        ({"name": "r", "queue": "q", "tags_any": [1]}, "tags_any"),
        ({"name": "r", "queue": "q", "tags_all": ["<b>"]}, "tags_all"),
        ({"name": "r", "queue": "q", "unknown_caller": "yes"}, "unknown_caller"),
        ({"name": "r", "queue": "q", "prefix": "86"}, "prefix"),
        ({"name": "r", "queue": "q", "did": "1\r\n2"}, "did"),
        ({"name": "r", "queue": "q", "when": "someday"}, "when"),
        ({"name": "r", "queue": "q", "when": 9}, "when"),
        ({"name": "r", "queue": "q", "attr": "ltv ~ 3"}, "attr"),
        ({"name": "r", "queue": "q", "enabled": 1}, "enabled"),
        ({"name": "r", "queue": "q", "colour": "red"}, "colour"),
    ],
)
async def test_bad_rule_is_400_naming_the_field(
    pool: asyncpg.Pool[Any], api: Api, body: dict[str, Any], field: str
) -> None:
    status, reply = await api.call("POST", "/api/rules", body)
    assert status == 400, reply
    assert reply["error"] == "invalid_field" and reply["field"] == field
    assert await pool.fetchval("SELECT count(*) FROM routing_rules") == 0
    assert await _audit(pool) == []


async def test_duplicate_rule_is_409(api: Api) -> None:
    assert (await api.call("POST", "/api/rules", {"name": "r", "queue": "q"}))[0] == 201
    status, body = await api.call("POST", "/api/rules", {"name": "r", "queue": "other"})
    assert status == 409 and body["field"] == "name"
    status, body = await api.call("PATCH", "/api/rules/r", {"name": "renamed"})
    assert status == 400 and body["field"] == "name"


async def test_rule_added_through_the_api_routes_the_next_call(
    pool: asyncpg.Pool[Any], api: Api
) -> None:
    await load_trace_crm(pool)
    async with running_router(pool) as router:
        before = await router.route("+15551230002")  # Bob: no tags
        assert (before.queue, before.rule) == ("support", "default")
        assert (await router.route("+15551230001")).queue == "senior"  # Alice: vip
        status, _ = await api.call(
            "POST",
            "/api/rules",
            {"name": "us-lab", "queue": "lab", "prefix": "+1555", "position": 1},
        )
        assert status == 201
        after = await router.until("+15551230002", "lab")
        assert after.rule == "us-lab"
        assert (await router.route("+15551230001")).queue == "lab"  # first match wins
        status, _ = await api.call("PATCH", "/api/rules/us-lab", {"enabled": False})
        assert status == 200
        assert (await router.until("+15551230001", "senior")).rule == "vip"
        status, _ = await api.call("DELETE", "/api/rules/vip")
        assert (await router.until("+15551230001", "support")).rule == "default"


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
    audit = await _audit(pool)
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


# --- customers --------------------------------------------------------------------------


async def test_customer_lifecycle_with_normalised_phones_and_audit(
    pool: asyncpg.Pool[Any], api: Api
) -> None:
    status, created = await api.call(
        "POST",
        "/api/customers",
        {
            "id": "c-1",
            "name": "Alice Chen",
            "phones": ["(555) 123-0001", "+1 555 123 0001", "0086 138 0013 8000"],
            "tags": ["vip", "gold", "vip"],
            "attributes": {"lifetime_value": 12000, "tier": "A"},
            "owner": "3001",
        },
    )
    assert status == 201, created
    assert created["phones"] == ["+15551230001", "+8613800138000"]
    assert created["tags"] == ["gold", "vip"]
    assert created["owner"] == "3001"
    status, got = await api.call("GET", "/api/customers/c-1")
    assert status == 200 and got == created
    status, found = await api.call("GET", "/api/customers?phone=555-123-0001")
    assert status == 200 and [c["id"] for c in found["customers"]] == ["c-1"]
    status, found = await api.call("GET", "/api/customers?phone=%2B15550000000")
    assert status == 200 and found["customers"] == []
    status, body = await api.call("GET", "/api/customers?phone=drop%20table")
    assert status == 400 and body["field"] == "phone"
    status, patched = await api.call("PATCH", "/api/customers/c-1", {"tags": ["complaint-risk"]})
    assert status == 200
    assert patched["tags"] == ["complaint-risk"] and patched["phones"] == created["phones"]
    status, replaced = await api.call("PUT", "/api/customers/c-1", {"name": "Alice C."})
    assert status == 200
    assert (replaced["phones"], replaced["tags"], replaced["owner"]) == ([], [], None)
    assert replaced["attributes"] == {}
    status, made = await api.call("PUT", "/api/customers/c-2", {"name": "New via PUT"})
    assert status == 201 and made["id"] == "c-2"
    status, deleted = await api.call("DELETE", "/api/customers/c-1")
    assert status == 200 and deleted["deleted"]["name"] == "Alice C."
    assert (await api.call("GET", "/api/customers/c-1"))[0] == 404
    status, page = await api.call("GET", "/api/customers?limit=1")
    assert [c["id"] for c in page["customers"]] == ["c-2"] and page["next"] == "c-2"
    actions = [(a["action"], a["target_id"]) for a in await _audit(pool)]
    assert actions == [
        ("customer.create", "c-1"),
        ("customer.update", "c-1"),
        ("customer.update", "c-1"),
        ("customer.create", "c-2"),
        ("customer.delete", "c-1"),
    ]


async def test_customer_without_id_gets_one(api: Api) -> None:
    status, created = await api.call("POST", "/api/customers", {"name": "Anon"})
    assert status == 201 and created["id"].startswith("c-")
    status, _ = await api.call("POST", "/api/customers", {"id": created["id"], "name": "Again"})
    assert status == 409


async def test_duplicate_phone_is_409_naming_the_owner_and_changes_nothing(
    pool: asyncpg.Pool[Any], api: Api
) -> None:
    await api.call("POST", "/api/customers", {"id": "c-1", "name": "A", "phones": ["+15551230001"]})
    await api.call("POST", "/api/customers", {"id": "c-2", "name": "B", "phones": ["+15551230002"]})
    audit_before = len(await _audit(pool))
    status, body = await api.call(
        "POST", "/api/customers", {"id": "c-3", "name": "C", "phones": ["+1 555 123 0001"]}
    )
    assert status == 409 and body["error"] == "conflict"
    assert body["owner"] == "c-1" and body["phone"] == "+15551230001" and "c-1" in body["reason"]
    assert (await api.call("GET", "/api/customers/c-3"))[0] == 404
    status, body = await api.call(
        "PATCH", "/api/customers/c-2", {"name": "B2", "phones": ["+15551230002", "+15551230001"]}
    )
    assert status == 409 and body["owner"] == "c-1"
    _, c2 = await api.call("GET", "/api/customers/c-2")
    assert c2["name"] == "B" and c2["phones"] == ["+15551230002"]
    assert len(await _audit(pool)) == audit_before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"name": "A\x00B"}, "name"),
        ({"name": "A\nB"}, "name"),
        ({"name": "x" * 301}, "name"),
        ({"name": "A", "id": ""}, "id"),
        ({"name": "A", "id": 7}, "id"),
        ({"name": "A", "phones": "+15551230001"}, "phones"),
        ({"name": "A", "phones": ["+15551230001", "garbage"]}, "phones[1]"),
        ({"name": "A", "phones": [None]}, "phones[0]"),
        ({"name": "A", "tags": "vip"}, "tags"),
        ({"name": "A", "tags": ["has space"]}, "tags[0]"),
        ({"name": "A", "attributes": []}, "attributes"),
        ({"name": "A", "attributes": {"k": "v\x00"}}, "attributes.k"),
        ({"name": "A", "owner": "nobody"}, "owner"),
        ({"name": "A", "owner": 3}, "owner"),
        ({"name": "A", "email": "x@y"}, "email"),
    ],
)
async def test_bad_customer_is_400_naming_the_field(
    pool: asyncpg.Pool[Any], api: Api, body: dict[str, Any], field: str
) -> None:
    status, reply = await api.call("POST", "/api/customers", body)
    assert status == 400, reply
    assert reply["error"] == "invalid_field" and reply["field"] == field
    assert await pool.fetchval("SELECT count(*) FROM customers") == 0
    assert await _audit(pool) == []


async def test_hostile_text_is_stored_as_data(api: Api) -> None:
    name = "Robert'); DROP TABLE customers;-- <script>alert(1)</script> \u202e 张伟"
    attributes = {"note": "<img src=x onerror=alert(1)>", "sql": "' OR '1'='1", "n": 1.5}
    cid = "id/with slash'\"<>"
    status, created = await api.call(
        "POST", "/api/customers", {"id": cid, "name": name, "attributes": attributes}
    )
    assert status == 201, created
    assert created["name"] == name and created["attributes"] == attributes
    from urllib.parse import quote

    status, got = await api.call("GET", "/api/customers/" + quote(cid, safe=""))
    assert status == 200 and got["id"] == cid and got["name"] == name


async def test_customer_tag_change_reaches_the_next_call(pool: asyncpg.Pool[Any], api: Api) -> None:
    await load_trace_crm(pool)
    async with running_router(pool) as router:
        assert (await router.route("+15551230002")).queue == "support"
        status, _ = await api.call("PATCH", f"/api/customers/{BOB}", {"tags": ["vip"]})
        assert status == 200
        decision = await router.until("+15551230002", "senior")
        assert decision.customer is not None and decision.customer.tags == ("vip",)


# --- calls and audit --------------------------------------------------------------------


async def test_call_record_as_json(pool: asyncpg.Pool[Any], api: Api) -> None:
    started = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    await pool.execute(
        "INSERT INTO call_records (call_id, caller, customer_id, did, queue, rule, agents,"
        " started_at, answered_at, ended_at, duration_s, talk_s, outcome, recording_path,"
        " disposition, notes) VALUES ($1, '+15551230001', 'c-1', '100', 'senior', 'vip', $2,"
        " $3, $3, $3, 42, 30, 'answered', '1700000000.1.wav', 'resolved', '<b>ok</b>')",
        "1700000000.1",
        [{"agent": "2001", "answered_at": started.isoformat(), "talk_s": 30}],
        started,
    )
    status, record = await api.call("GET", "/api/calls/1700000000.1")
    assert status == 200
    assert record["call_id"] == "1700000000.1"
    assert record["agents"] == [{"agent": "2001", "answered_at": started.isoformat(), "talk_s": 30}]
    assert record["started_at"] == started.isoformat()
    assert (record["outcome"], record["disposition"], record["notes"]) == (
        "answered",
        "resolved",
        "<b>ok</b>",
    )
    for column in ("caller", "customer_id", "did", "queue", "rule", "ended_at", "duration_s",
                   "talk_s", "recording_path", "answered_at"):  # fmt: skip
        assert column in record
    status, body = await api.call("GET", "/api/calls/nope")
    assert status == 404 and body["error"] == "not_found"


async def test_audit_endpoint_lists_changes_newest_first(api: Api) -> None:
    await api.call("POST", "/api/rules", {"name": "a", "queue": "q"})
    await api.call("POST", "/api/rules", {"name": "b", "queue": "q"})
    status, body = await api.call("GET", "/api/audit?target_type=rule&target_id=a")
    assert status == 200
    assert [(e["action"], e["target_id"], e["actor"]) for e in body["entries"]] == [
        ("rule.create", "a", "boss")
    ]
    _, body = await api.call("GET", "/api/audit")
    assert [e["target_id"] for e in body["entries"]] == ["b", "a"]
    status, body = await api.call("GET", "/api/audit?limit=-1")
    assert status == 400 and body["field"] == "limit"


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


async def test_customer_id_with_surrounding_spaces_is_refused(api: Api) -> None:
    status, body = await api.call("POST", "/api/customers", {"id": " c-1", "name": "A"})
    assert status == 400 and body["field"] == "id"
    status, body = await api.call("PUT", "/api/customers/c-1%20", {"name": "A"})
    assert status == 400 and body["field"] == "id"
