"""The customers in the admin API, over a real aiohttp server and real PostgreSQL."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.admin.api import Api, audit_rows
from tests.admin.routing_probe import running_router
from tests.crm.fixture_crm import BOB, load_trace_crm

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
    actions = [(a["action"], a["target_id"]) for a in await audit_rows(pool)]
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
    audit_before = len(await audit_rows(pool))
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
    assert len(await audit_rows(pool)) == audit_before


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
    assert await audit_rows(pool) == []


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


async def test_customer_id_with_surrounding_spaces_is_refused(api: Api) -> None:
    status, body = await api.call("POST", "/api/customers", {"id": " c-1", "name": "A"})
    assert status == 400 and body["field"] == "id"
    status, body = await api.call("PUT", "/api/customers/c-1%20", {"name": "A"})
    assert status == 400 and body["field"] == "id"
