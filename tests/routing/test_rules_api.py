"""The routing rules in the admin API, over a real aiohttp server and real PostgreSQL."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.admin.api import Api, audit_rows
from tests.admin.routing_probe import running_router
from tests.crm.fixture_crm import load_trace_crm

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
    audit = await audit_rows(pool)
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
    assert await audit_rows(pool) == []


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
