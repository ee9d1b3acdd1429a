"""The agent's desk and the supervisors' wallboard, beside the agent page
(`bridge.pops.agent_routes`).

GET  /wallboard                          the wallboard page (static; its data needs a
                                         supervisor or admin token: the pops websocket's
                                         queue.stats and GET /api/queues answer 403 else)
GET  /wallboard/static/{wallboard.js,wallboard.css}
POST /agent/api/customers                Authorization: Bearer <agent token>
     body {"name": "...", "phone": "...", "tags": ["..."]}: an unknown caller becomes a
     customer of the CRM, written through the connector (`create_customer`), so the next
     call from that number pops its card. 201 {"id", "name", "phones", "tags"}; 400 naming
     the field; 401 bad token; 409 the number already belongs to a customer (nothing is
     merged or changed); 501 this CRM cannot (`rest` without `[crm] create_url`); 502/503
     the CRM refused / is not reachable. Audited (`customer.create`, actor = the agent).
PATCH /agent/api/customers/{id}          Authorization: Bearer <agent token>
     body {"name"?: "...", "tags"?: ["..."]}: correct a customer's name and/or tags
     through the connector, if `[permissions] agents_edit` lets this agent (none | own |
     all; supervisors and admins always). 200 {"id", "name", "tags", "owner"}; 400; 401;
     403 not permitted; 404 unknown id; 501 the CRM takes corrections in itself (external
     connectors). Audited (`customer.update` with before and after); a refusal changes
     nothing.
GET  /agent/api/calls/today              this agent's calls today (newest first, at most
                                         50): call_id, caller, customer, started_at,
                                         talk_s, outcome, disposition
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from importlib import resources
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

from aiohttp import web

from bridge.connectors.base import CrmConnector
from bridge.connectors.builtin import BuiltinConnector
from bridge.crm import audit, customers
from bridge.crm.customer_edits import EditRefused, edit_policy
from bridge.db.errors import DB_ERRORS
from bridge.errors import (
    CrmError,
    CrmRefused,
    CrmUnavailable,
    DuplicatePhone,
    NotFound,
    ValidationError,
)
from bridge.web.errors import ApiError, invalid, read_json

if TYPE_CHECKING:
    from bridge.pops.agent_routes import AgentDeps

__all__ = ["setup_desk_routes"]

_STATIC = {"wallboard.js": "text/javascript", "wallboard.css": "text/css"}
_CREATE_FIELDS = frozenset({"name", "phone", "tags"})
_EDIT_FIELDS = frozenset({"name", "tags"})

_TODAY = """
SELECT r.call_id, r.caller, c.name AS customer, r.started_at, r.talk_s, r.outcome,
       (SELECT a->>'disposition' FROM jsonb_array_elements(r.agents) a
         WHERE a->>'agent' = $1 LIMIT 1) AS disposition
  FROM call_records r LEFT JOIN customers c ON c.id = r.customer_id
 WHERE r.started_at >= $2 AND r.agents @> jsonb_build_array(jsonb_build_object('agent', $1::text))
 ORDER BY r.started_at DESC LIMIT 50
"""


def _asset(name: str) -> bytes:
    return resources.files("bridge.pops").joinpath("static", name).read_bytes()


async def wallboard_page(request: web.Request) -> web.Response:
    return web.Response(body=_asset("wallboard.html"), content_type="text/html", charset="utf-8")


async def wallboard_static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _STATIC:
        raise web.HTTPNotFound()
    return web.Response(body=_asset(name), content_type=_STATIC[name], charset="utf-8")


def _deps(request: web.Request) -> AgentDeps:
    from bridge.pops.agent_routes import AGENT_DEPS

    return request.app[AGENT_DEPS]


def _connector(deps: AgentDeps) -> CrmConnector:
    """The configured connector; the built-in one works on the desk's own pool."""
    connector = deps.connector
    if connector is None or isinstance(connector, BuiltinConnector):
        return BuiltinConnector(pool=deps.pool)
    return cast("CrmConnector", connector)


def _crm_failure(exc: CrmError) -> ApiError:
    if isinstance(exc, CrmRefused) and exc.kind == "unsupported":
        return ApiError(501, "not_implemented", str(exc))
    if isinstance(exc, CrmRefused):
        return ApiError(502, "crm_refused", f"the CRM refused it: {str(exc)[:200]}")
    return ApiError(503, "unavailable", f"the CRM is not reachable; retry later ({exc})"[:300])


async def _audit_external(
    deps: AgentDeps, actor: str, action: str, cid: str, before: Any, after: Any
) -> None:
    """An external CRM has the change; the bridge keeps who asked for it."""
    try:
        async with deps.pool.acquire() as conn, conn.transaction():
            await audit.record(
                conn,
                actor=actor,
                action=action,
                target_type="customer",
                target_id=cid,
                before=before,
                after=after,
            )
    except DB_ERRORS as exc:
        raise CrmUnavailable(f"the CRM has it, but the audit row failed: {exc}") from exc


def _body_fields(body: dict[str, Any], allowed: frozenset[str]) -> None:
    for key in body:
        if key not in allowed:
            raise invalid(key[:80], "unknown field; allowed: " + ", ".join(sorted(allowed)))


async def create_customer(request: web.Request) -> web.Response:
    from bridge.pops.agent_routes import bearer_agent

    deps = _deps(request)
    agent = await bearer_agent(request, deps)
    body = await read_json(request, limit=8 * 1024)
    _body_fields(body, _CREATE_FIELDS)
    try:
        name = customers.customer_name(body.get("name"))
        phone = customers.phone(body.get("phone"), deps.regions.of_pbx(agent.pbx))
        tags = customers.tags(body.get("tags", []))
    except ValidationError as exc:
        raise invalid(exc.field, exc.reason) from exc
    connector = _connector(deps)
    try:
        created = await connector.create_customer(name, phone, tags, actor=agent.id)
    except DuplicatePhone as exc:
        raise ApiError(409, "conflict", "this number already belongs to a customer") from exc
    except CrmError as exc:
        raise _crm_failure(exc) from exc
    if not isinstance(connector, BuiltinConnector):
        after = {"id": created.id, "name": created.name, "phones": [phone], "tags": tags}
        await _audit_external(deps, agent.id, "customer.create", created.id, None, after)
    return web.json_response(
        {"id": created.id, "name": created.name, "phones": [phone], "tags": list(tags)},
        status=201,
    )


async def edit_customer(request: web.Request) -> web.Response:
    from bridge.pops.agent_routes import bearer_agent

    deps = _deps(request)
    agent = await bearer_agent(request, deps)
    try:
        cid = customers.customer_id(request.match_info["id"])
    except ValidationError as exc:
        raise invalid("id", exc.reason) from exc
    body = await read_json(request, limit=8 * 1024)
    _body_fields(body, _EDIT_FIELDS)
    if not body:
        raise invalid("name", "send name and/or tags")
    try:
        name = customers.customer_name(body["name"]) if "name" in body else None
        tags = customers.tags(body["tags"]) if "tags" in body else None
    except ValidationError as exc:
        raise invalid(exc.field, exc.reason) from exc
    allowed = edit_policy(agent.role, agent.id, deps.agents_edit)
    connector = _connector(deps)
    try:
        updated = await connector.update_customer(
            cid, name=name, tags=tags, actor=agent.id, allowed=allowed
        )
    except EditRefused as exc:
        raise ApiError(403, "forbidden", "you may not edit this customer") from exc
    except NotFound as exc:
        raise ApiError(404, "not_found", f"no customer {cid[:128]!r}") from exc
    except CrmError as exc:
        raise _crm_failure(exc) from exc
    return web.json_response(
        {"id": updated.id, "name": updated.name, "tags": list(updated.tags), "owner": updated.owner}
    )


async def calls_today(request: web.Request) -> web.Response:
    from bridge.pops.agent_routes import bearer_agent

    deps = _deps(request)
    agent = await bearer_agent(request, deps)
    zone = ZoneInfo(deps.timezone)
    midnight = datetime.combine(datetime.now(UTC).astimezone(zone).date(), time(0), tzinfo=zone)
    try:
        rows = await deps.pool.fetch(_TODAY, agent.id, midnight)
    except DB_ERRORS as exc:
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
    app.router.add_patch("/agent/api/customers/{id}", edit_customer)
    app.router.add_get("/agent/api/calls/today", calls_today)
