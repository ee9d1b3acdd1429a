"""The customers in the admin API (`bridge.web.admin_api`; admins only).

    GET    /api/customers?phone=N       {"customers": [0 or 1 customer]} (N normalised)
    GET    /api/customers?after=ID&limit=100   keyset pages: {"customers": [...], "next": ID}
    GET    /api/customers?q=TEXT        name contains, id starts with, an attribute equals, or
                                        the phone TEXT normalises to (same paging)
    POST   /api/customers               {id?, name, phones?, tags?, attributes?, owner?} → 201
    GET    /api/customers/{id}          with phones, tags, attributes, owner
    PUT    /api/customers/{id}          create or replace (absent parts are emptied)
    PATCH  /api/customers/{id}          change only the given parts
    DELETE /api/customers/{id}          → {"deleted": customer}

A phone that belongs to another customer is 409 `conflict` naming the owner. Every change
writes one `audit_log` row in its transaction; it reaches the next call without a restart
through the tables' NOTIFY triggers (sql/010), which empty the caller-lookup cache.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
from aiohttp import web

from bridge.crm import customers
from bridge.crm.audit_api import audit_change
from bridge.crm.phones import to_e164
from bridge.errors import NotFound, ValidationError
from bridge.web.admin_api import BODY_LIMIT
from bridge.web.errors import ApiError, invalid, read_json
from bridge.web.params import (
    PLAIN,
    check_fields,
    limit_param,
    only_params,
    plain_param,
    validated,
)

if TYPE_CHECKING:
    from bridge.crm.customers import Conn

__all__ = ["CustomersApiDeps", "setup_customers_api"]


@dataclass(frozen=True, slots=True)
class CustomersApiDeps:
    pool: asyncpg.Pool[Any]
    region: str  # [pbx] default_region: how phone numbers in bodies and queries read


_DEPS = web.AppKey("bridge_customers_api_deps", CustomersApiDeps)


def _deps(request: web.Request) -> CustomersApiDeps:
    return request.config_dict[_DEPS]


_CUSTOMER_FIELDS = frozenset({"id", "name", "phones", "tags", "attributes", "owner"})


def _customer_fields(body: Mapping[str, Any], region: str, *, full: bool) -> dict[str, Any]:
    """Validated parts present in `body`; with `full`, absent parts become empty."""
    out: dict[str, Any] = {}
    try:
        if "name" in body or full:
            out["name"] = customers.customer_name(body.get("name"))
        if "phones" in body or full:
            out["phones"] = customers.phones(body.get("phones", []), region)
        if "tags" in body or full:
            out["tags"] = customers.tags(body.get("tags", []))
        if "attributes" in body or full:
            out["attributes"] = customers.attributes(body.get("attributes", {}))
        if "owner" in body or full:
            owner = body.get("owner")
            out["owner"] = None if owner in (None, "") else customers.agent_id(owner)
    except ValidationError as exc:
        raise validated(exc) from exc
    return out


async def _write_customer(
    conn: Conn, cid: str, fields: Mapping[str, Any], before: Mapping[str, Any] | None
) -> None:
    name = fields.get("name", before["name"] if before else None)
    if name is None:
        raise invalid("name", "required text")
    await customers.upsert_row(conn, cid, name, fields.get("attributes"))
    if "phones" in fields:
        await customers.set_phones(conn, cid, fields["phones"])
    if "tags" in fields:
        await customers.set_tags(conn, cid, fields["tags"])
    if "owner" in fields:
        await customers.set_owner(conn, cid, fields["owner"])


_CUSTOMER_PARAMS = frozenset({"phone", "q", "after", "limit"})


async def search_customers(request: web.Request) -> web.Response:
    deps = _deps(request)
    query = request.query
    only_params(query, _CUSTOMER_PARAMS)
    region = deps.region
    if "phone" in query:
        e164 = to_e164(query["phone"], region)
        if e164 is None:
            raise invalid("phone", "not a valid phone number")
        cid = await customers.find_by_phone(deps.pool, e164)
        found = await customers.get(deps.pool, cid) if cid else None
        return web.json_response({"customers": [found] if found else []})
    limit = limit_param(query, 500)
    after = plain_param(query, "after", PLAIN) or ""
    if "q" in query:
        text = query["q"].strip()
        if not text or not PLAIN.fullmatch(text):
            raise invalid("q", "1-200 characters of text, without control characters")
        page = await customers.search(
            deps.pool, text, to_e164(text, region), after=after, limit=limit
        )
    else:
        page = await customers.page(deps.pool, after=after, limit=limit)
    return web.json_response(
        {"customers": page, "next": page[-1]["id"] if len(page) == limit else None}
    )


async def get_customer(request: web.Request) -> web.Response:
    cid = request.match_info["id"]
    found = await customers.get(_deps(request).pool, cid)
    if found is None:
        raise NotFound(f"no customer {cid[:128]!r}")
    return web.json_response(found)


async def create_customer(request: web.Request) -> web.Response:
    deps = _deps(request)
    body = await read_json(request, limit=BODY_LIMIT)
    check_fields(body, _CUSTOMER_FIELDS)
    try:
        cid = customers.customer_id(body["id"]) if "id" in body else "c-" + secrets.token_hex(8)
    except ValidationError as exc:
        raise validated(exc) from exc
    fields = _customer_fields(body, deps.region, full=True)
    async with deps.pool.acquire() as conn, conn.transaction():
        if await customers.lock(conn, cid) is not None:
            raise ApiError(409, "conflict", f"customer {cid} already exists", field="id")
        await _write_customer(conn, cid, fields, None)
        after = await customers.get(conn, cid)
        await audit_change(
            conn, request, "customer.create", "customer", cid, None, customers.snapshot(after)
        )
    return web.json_response(after, status=201)


async def put_customer(request: web.Request) -> web.Response:
    """PUT creates or replaces; PATCH changes only the parts given."""
    deps = _deps(request)
    cid = request.match_info["id"]
    try:
        customers.customer_id(cid)
    except ValidationError as exc:
        raise validated(exc) from exc
    body = await read_json(request, limit=BODY_LIMIT)
    check_fields(body, _CUSTOMER_FIELDS)
    if "id" in body and body["id"] != cid:
        raise invalid("id", "does not match the URL; a customer cannot be renamed")
    full = request.method == "PUT"
    fields = _customer_fields(body, deps.region, full=full)
    async with deps.pool.acquire() as conn, conn.transaction():
        before = await customers.lock(conn, cid)
        if before is None and not full:
            raise NotFound(f"no customer {cid[:128]!r}")
        await _write_customer(conn, cid, fields, before)
        await customers.touch(conn, cid)
        after = await customers.get(conn, cid)
        action = "customer.update" if before else "customer.create"
        await audit_change(
            conn,
            request,
            action,
            "customer",
            cid,
            customers.snapshot(before),
            customers.snapshot(after),
        )
    return web.json_response(after, status=200 if before else 201)


async def delete_customer(request: web.Request) -> web.Response:
    cid = request.match_info["id"]
    async with _deps(request).pool.acquire() as conn, conn.transaction():
        before = await customers.lock(conn, cid)
        if before is None:
            raise NotFound(f"no customer {cid[:128]!r}")
        await customers.delete(conn, cid)
        await audit_change(
            conn, request, "customer.delete", "customer", cid, customers.snapshot(before), None
        )
    return web.json_response({"deleted": before})


def setup_customers_api(api: web.Application, deps: CustomersApiDeps) -> None:
    """Mount the customer routes on the admin API."""
    api[_DEPS] = deps
    r = api.router
    r.add_get("/customers", search_customers)
    r.add_post("/customers", create_customer)
    r.add_get("/customers/{id:.+}", get_customer)
    r.add_put("/customers/{id:.+}", put_customer)
    r.add_patch("/customers/{id:.+}", put_customer)
    r.add_delete("/customers/{id:.+}", delete_customer)
