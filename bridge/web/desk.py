"""The agent's desk and the supervisors' wallboard, beside the agent page (`bridge.web.agent`).

GET  /wallboard                          the wallboard page (static; its data needs a
                                         supervisor or admin token: the pops websocket's
                                         queue.stats and GET /api/queues answer 403 else)
GET  /wallboard/static/{wallboard.js,wallboard.css}
POST /agent/api/customers                Authorization: Bearer <agent token>
     body {"name": "...", "phone": "...", "tags": ["..."]}: an unknown caller becomes a
     customer of the built-in CRM, so the next call from that number pops its card.
     201 {"id", "name", "phones", "tags"}; 400 naming the field; 401 bad token; 409 the
     number already belongs to a customer (nothing is merged or changed). Audited
     (`customer.create`, actor = the agent).
GET  /agent/api/calls/today              this agent's calls today (newest first, at most
                                         50): call_id, caller, customer, started_at,
                                         talk_s, outcome, disposition
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, time
from importlib import resources
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp import web

from bridge import audit, customers
from bridge.errors import CrmUnavailable, ValidationError
from bridge.web.errors import ApiError, invalid, read_json

if TYPE_CHECKING:
    from bridge.web.agent import AgentDeps

__all__ = ["setup_desk_routes"]

_STATIC = {"wallboard.js": "text/javascript", "wallboard.css": "text/css"}
_CREATE_FIELDS = frozenset({"name", "phone", "tags"})
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

_TODAY = """
SELECT r.call_id, r.caller, c.name AS customer, r.started_at, r.talk_s, r.outcome,
       (SELECT a->>'disposition' FROM jsonb_array_elements(r.agents) a
         WHERE a->>'agent' = $1 LIMIT 1) AS disposition
  FROM call_records r LEFT JOIN customers c ON c.id = r.customer_id
 WHERE r.started_at >= $2 AND r.agents @> jsonb_build_array(jsonb_build_object('agent', $1::text))
 ORDER BY r.started_at DESC LIMIT 50
"""


def _asset(name: str) -> bytes:
    return resources.files("bridge.web").joinpath("static", name).read_bytes()


async def wallboard_page(request: web.Request) -> web.Response:
    return web.Response(body=_asset("wallboard.html"), content_type="text/html", charset="utf-8")


async def wallboard_static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _STATIC:
        raise web.HTTPNotFound()
    return web.Response(body=_asset(name), content_type=_STATIC[name], charset="utf-8")


def _deps(request: web.Request) -> AgentDeps:
    from bridge.web.agent import AGENT_DEPS

    return request.app[AGENT_DEPS]


async def create_customer(request: web.Request) -> web.Response:
    from bridge.web.agent import bearer_agent

    deps = _deps(request)
    agent = await bearer_agent(request, deps)
    body = await read_json(request, limit=8 * 1024)
    for key in body:
        if key not in _CREATE_FIELDS:
            raise invalid(key[:80], "unknown field; allowed: name, phone, tags")
    try:
        name = customers.customer_name(body.get("name"))
        phone = customers.phone(body.get("phone"), deps.region)
        tags = customers.tags(body.get("tags", []))
    except ValidationError as exc:
        raise invalid(exc.field, exc.reason) from exc
    cid = "c-" + secrets.token_hex(8)
    try:
        async with deps.pool.acquire() as conn, conn.transaction():
            # Serialise creations for the same number: the check below then sees the winner.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('phone:' || $1))", phone)
            owner = await customers.find_by_phone(conn, phone)
            if owner is not None:
                raise ApiError(409, "conflict", "this number already belongs to a customer")
            await customers.upsert_row(conn, cid, name, {})
            await customers.set_phones(conn, cid, [phone])
            await customers.set_tags(conn, cid, tags)
            after = await customers.get(conn, cid)
            await audit.record(
                conn,
                actor=agent.id,
                action="customer.create",
                target_type="customer",
                target_id=cid,
                before=None,
                after=customers.snapshot(after),
            )
    except _DB_ERRORS as exc:
        raise CrmUnavailable(f"cannot create the customer: {exc}") from exc
    return web.json_response({"id": cid, "name": name, "phones": [phone], "tags": tags}, status=201)


async def calls_today(request: web.Request) -> web.Response:
    from bridge.web.agent import bearer_agent

    deps = _deps(request)
    agent = await bearer_agent(request, deps)
    zone = ZoneInfo(deps.timezone)
    midnight = datetime.combine(datetime.now(UTC).astimezone(zone).date(), time(0), tzinfo=zone)
    try:
        rows = await deps.pool.fetch(_TODAY, agent.id, midnight)
    except _DB_ERRORS as exc:
        raise CrmUnavailable(f"cannot read today's calls: {exc}") from exc
    calls: list[dict[str, Any]] = [
        {
            "call_id": row["call_id"],
            "caller": row["caller"],
            "customer": row["customer"],
            "started_at": row["started_at"].isoformat() if row["started_at"] else None,
            "talk_s": row["talk_s"],
            "outcome": row["outcome"],
            "disposition": row["disposition"],
        }
        for row in rows
    ]
    return web.json_response({"calls": calls})


def setup_desk_routes(app: web.Application) -> None:
    app.router.add_get("/wallboard", wallboard_page)
    app.router.add_get("/wallboard/", wallboard_page)
    app.router.add_get("/wallboard/static/{name}", wallboard_static)
    app.router.add_post("/agent/api/customers", create_customer)
    app.router.add_get("/agent/api/calls/today", calls_today)
