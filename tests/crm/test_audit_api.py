"""Who saw what: card views and changes through GET /api/audit, on real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from bridge.crm import audit
from bridge.crm.audit import CardView, record_card_views
from bridge.errors import CrmUnavailable
from bridge.web.openapi import openapi_document
from tests.admin.api import Api

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


def view(minutes: int, agent: str, customer: str, call: str = "", *sections: str) -> CardView:
    return CardView(T0 + timedelta(minutes=minutes), agent, customer, call, tuple(sections))


async def audit_page(api: Api, **params: Any) -> dict[str, Any]:
    status, body = await api.call("GET", "/api/audit?" + urlencode(params))
    assert status == 200, body
    return body


# --- the writer the pop delivery calls ----------------------------------------------------


async def test_card_views_are_written_in_one_batch(pool: asyncpg.Pool[Any]) -> None:
    await record_card_views(
        pool,
        [
            view(0, "1001", "c-1", "1.1", "identity", "orders", "attributes:tier"),
            view(1, "1002", "c-1", "1.1", "identity"),
            view(2, "1001", "c-2", "1.2"),
        ],
    )
    rows = await pool.fetch("SELECT at, agent_id, customer_id, call_id, sections FROM card_views")
    assert [tuple(r) for r in rows] == [
        (T0, "1001", "c-1", "1.1", ["identity", "orders", "attributes:tier"]),
        (T0 + timedelta(minutes=1), "1002", "c-1", "1.1", ["identity"]),
        (T0 + timedelta(minutes=2), "1001", "c-2", "1.2", []),
    ]
    await record_card_views(pool, [])  # nothing to do, no statement


async def test_hostile_values_do_not_break_the_batch(pool: asyncpg.Pool[Any]) -> None:
    await record_card_views(
        pool,
        [
            view(0, "a\x00b", "c'; DROP TABLE card_views;--", "x\r\ny", "\udcff", "sec\x00"),
            view(1, "1001", "c" * 5000, "1.1", "<script>"),
        ],
    )
    rows = await pool.fetch("SELECT * FROM card_views ORDER BY id")
    assert rows[0]["agent_id"] == "ab"
    assert rows[0]["customer_id"] == "c'; DROP TABLE card_views;--"
    assert rows[0]["sections"] == ["?", "sec"]  # a lone surrogate is replaced
    assert len(rows[1]["customer_id"]) == 128 and rows[1]["sections"] == ["<script>"]


async def test_a_database_outage_is_crm_unavailable(database_url: str) -> None:
    from bridge.db.pool import create_pool

    dead = await create_pool(database_url, min_size=1, max_size=1)
    await dead.close()
    with pytest.raises(CrmUnavailable):
        await record_card_views(dead, [view(0, "1001", "c-1")])


# --- reading: who saw this customer's data last month ------------------------------------


async def test_who_saw_this_customer_last_month(api: Api, pool: asyncpg.Pool[Any]) -> None:
    await record_card_views(
        pool,
        [
            view(-60 * 24 * 40, "1001", "c-1", "0.1", "identity"),  # before the month
            view(0, "1001", "c-1", "1.1", "identity", "orders"),
            view(5, "1002", "c-1", "1.2", "identity"),
            view(6, "1002", "c-2", "1.3", "identity"),  # another customer
            view(60 * 24 * 31, "1001", "c-1", "9.9", "identity"),  # after it
        ],
    )
    body = await audit_page(
        api, customer="c-1", since="2026-10-01T00:00:00Z", until="2026-11-01T00:00:00Z"
    )
    assert [(e["kind"], e["agent"], e["call"], e["sections"]) for e in body["entries"]] == [
        ("card_view", "1002", "1.2", ["identity"]),
        ("card_view", "1001", "1.1", ["identity", "orders"]),
    ]
    assert body["entries"][0]["customer"] == "c-1"
    assert body["entries"][0]["at"] == (T0 + timedelta(minutes=5)).isoformat()
    assert body["next"] is None


async def test_filters_by_agent_call_and_kind(api: Api, pool: asyncpg.Pool[Any]) -> None:
    await record_card_views(pool, [view(0, "1001", "c-1", "1.1"), view(1, "1002", "c-1", "1.1")])
    await api.call("POST", "/api/customers", {"id": "c-1", "name": "Alice"})  # a change by boss
    await api.call("POST", "/api/rules", {"name": "r", "queue": "q"})
    body = await audit_page(api, agent="1002")
    assert [(e["kind"], e["agent"]) for e in body["entries"]] == [("card_view", "1002")]
    body = await audit_page(api, call="1.1")
    assert {e["agent"] for e in body["entries"]} == {"1001", "1002"}
    body = await audit_page(api, customer="c-1")
    assert [e["kind"] for e in body["entries"]] == ["change", "card_view", "card_view"]
    assert body["entries"][0]["action"] == "customer.create"
    body = await audit_page(api, kind="change")
    assert [e["action"] for e in body["entries"]] == ["rule.create", "customer.create"]
    body = await audit_page(api, kind="change", agent="boss")
    assert len(body["entries"]) == 2
    body = await audit_page(api, kind="card_view", target_type="rule")
    assert body["entries"] == []


async def test_an_amended_disposition_is_found_by_call(api: Api, pool: asyncpg.Pool[Any]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await audit.record(
            conn,
            actor="sup",
            action="disposition.amend",
            target_type="call",
            target_id="1.1",
            before={"agent": "1001", "disposition": "complaint"},
            after={"agent": "1001", "disposition": "resolved"},
        )
    await record_card_views(pool, [view(0, "1001", "c-1", "1.1")])
    body = await audit_page(api, call="1.1", kind="change")
    [entry] = body["entries"]
    assert (entry["actor"], entry["action"], entry["target_id"]) == (
        "sup",
        "disposition.amend",
        "1.1",
    )
    assert entry["before"]["disposition"] == "complaint"


async def test_pages_follow_the_cursor_without_gaps_or_repeats(
    api: Api, pool: asyncpg.Pool[Any]
) -> None:
    # 23 views, several sharing a timestamp, mixed with changes: the keyset must break ties
    await record_card_views(
        pool, [view(n // 3, f"a{n % 4}", f"c-{n}", f"{n}.1") for n in range(23)]
    )
    for n in range(4):
        await api.call("POST", "/api/rules", {"name": f"r{n}", "queue": "q"})
    seen: list[tuple[str, int]] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        body = await audit_page(api, **params)
        seen += [(e["kind"], e["id"]) for e in body["entries"]]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break
    assert pages == 6
    assert len(seen) == len(set(seen)) == 27
    everything = await audit_page(api, limit=1000)
    assert [(e["kind"], e["id"]) for e in everything["entries"]] == seen


# --- who may ask, and what they may ask --------------------------------------------------


async def test_only_admins_read_the_audit(api: Api, tokens: dict[str, str]) -> None:
    for role in ("agent", "supervisor"):
        status, body = await api.call("GET", "/api/audit", token=tokens[role])
        assert (status, body["error"]) == (403, "forbidden")
    status, body = await api.call("GET", "/api/audit", token="wrong-token-wrong-token-wrong")
    assert (status, body["error"]) == (401, "unauthorized")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("limit=%D9%A3", "limit"),  # an Arabic-Indic digit: isdigit() but not ASCII
        ("kind=views", "kind"),
        ("since=yesterday", "since"),
        ("until=2026-13-01", "until"),
        ("since=" + "9" * 100, "since"),
        ("since=2026-11-01&until=2026-10-01", "until"),
        ("cursor=abc", "cursor"),
        ("cursor=" + quote("' OR 1=1 --"), "cursor"),
        ("agent=a%0D%0Ab", "agent"),
        ("agent=" + "a" * 65, "agent"),
        ("call=x%00y", "call"),
        ("customer=c%00d", "customer"),
        ("customer=" + "c" * 201, "customer"),
        ("target_type=%0A", "target_type"),
        ("agent=a&agent=b", "agent"),
        ("custmer=c-1", "custmer"),
    ],
)
async def test_every_bad_parameter_is_400_naming_it(api: Api, query: str, field: str) -> None:
    status, body = await api.call("GET", "/api/audit?" + query)
    assert status == 400, body
    assert (body["error"], body["field"]) == ("invalid_field", field)
    assert body["status"] == 400 and body["reason"]


async def test_a_forged_cursor_of_the_right_shape_is_still_checked(api: Api) -> None:
    forged = audit.Cursor(datetime(2026, 1, 1, tzinfo=UTC), "card_view", 5).encode()
    body = await audit_page(api, cursor=forged)
    assert body["entries"] == []
    bad_kind = audit.Cursor(datetime(2026, 1, 1, tzinfo=UTC), "drop", 5).encode()
    status, answer = await api.call("GET", "/api/audit?cursor=" + bad_kind)
    assert (status, answer["field"]) == (400, "cursor")


async def test_times_without_a_zone_are_utc(api: Api, pool: asyncpg.Pool[Any]) -> None:
    await record_card_views(pool, [view(0, "1001", "c-1")])
    assert len((await audit_page(api, since="2026-10-01T09:00:00"))["entries"]) == 1
    assert len((await audit_page(api, since="2026-10-01T09:00:01"))["entries"]) == 0
    assert len((await audit_page(api, until="2026-10-01T11:00:00+02:00"))["entries"]) == 0


# --- the API's own description ----------------------------------------------------------


async def test_openapi_describes_every_admin_route_and_the_audit(
    api: Api, client: TestClient[Any, Any], tokens: dict[str, str]
) -> None:
    status, doc = await api.call("GET", "/api/openapi.json")
    assert status == 200 and doc == openapi_document()
    assert doc["openapi"].startswith("3.")
    mounted = set()
    for resource in client.app.router.resources():  # the /api/ sub-application's routes
        sub = getattr(resource, "_app", None)
        if sub is None:
            continue
        for route in sub.router.routes():
            if route.method == "HEAD":
                continue
            path = route.resource.canonical.replace("{id:.+}", "{id}")
            mounted.add((path, route.method.lower()))
    described = {
        (path, method)
        for path, ops in doc["paths"].items()
        for method in ops
        if method != "parameters"
    }
    assert mounted == described
    params = {p["name"] for p in doc["paths"]["/api/audit"]["get"]["parameters"]}
    assert params >= {"customer", "agent", "call", "since", "until", "kind", "limit", "cursor"}
    status, _ = await api.call("GET", "/api/openapi.json", token=tokens["agent"])
    assert status == 403
