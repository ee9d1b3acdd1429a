"""The admin API under `/api/`: rules, agents, customers, calls (and the audit trail).

Every request needs `Authorization: Bearer <token>` of an active agent with role `admin`
(401 without or with a wrong token, 403 for other roles). Bodies are UTF-8 JSON objects of
at most 64 KiB; unknown fields are refused (a typo should not be silently ignored). Errors
are JSON (bridge/web/errors.py). Every change writes one `audit_log` row (actor = the
admin's agent id, before/after as JSON) in the same transaction as the change.

    GET    /api/rules                   {"rules": [rule, ...]} in position order
    POST   /api/rules                   create; `position` (1 = first) shifts the others → 201
    GET    /api/rules/{name}
    PATCH  /api/rules/{name}            change some fields; `position` moves the rule
    PUT    /api/rules/{name}            replace every condition (absent ones are cleared)
    DELETE /api/rules/{name}            → {"deleted": rule}
    GET    /api/agents                  {"agents": [agent, ...]} (never tokens or hashes)
    POST   /api/agents                  {id, name, role?, device?} → 201 agent + "token" (once)
    GET    /api/agents/{id}
    PATCH  /api/agents/{id}             {name?, role?, device?, active?}
    DELETE /api/agents/{id}             deactivate (the row stays: records refer to it)
    POST   /api/agents/{id}/token       a fresh token; the old one stops working
    GET    /api/customers?phone=N       {"customers": [0 or 1 customer]} (N normalised)
    GET    /api/customers?after=ID&limit=100   keyset pages: {"customers": [...], "next": ID}
    GET    /api/customers?q=TEXT        name contains, id starts with, an attribute equals, or
                                        the phone TEXT normalises to (same paging)
    POST   /api/customers               {id?, name, phones?, tags?, attributes?, owner?} → 201
    GET    /api/customers/{id}          with phones, tags, attributes, owner
    PUT    /api/customers/{id}          create or replace (absent parts are emptied)
    PATCH  /api/customers/{id}          change only the given parts
    DELETE /api/customers/{id}          → {"deleted": customer}
    GET    /api/calls?since=&until=&agent=&queue=&outcome=&customer=&direction=&limit=&cursor=
                                        finished calls, newest first: {"calls", "next"}
    GET    /api/calls/{call_id}         the `call_records` row
    GET    /api/queues                  the wallboard's figures; supervisors may read it too
    GET    /api/audit?customer=&agent=&call=&since=&until=&kind=&limit=&cursor=
                                        the audit trail, newest first: changes (`kind`
                                        change) and customer cards delivered in pops
                                        (`card_view`); {"entries": [...], "next": cursor}
    POST   /api/dial                    {agent, number} or {agent, callback_of}: click-to-call
                                        for that agent's device → 202 {call_id} (bridge/dial)
    GET    /api/openapi.json            this API as OpenAPI 3.1

Only admins read the audit trail, supervisors included in what it reports: it holds every
customer's before/after state and every colleague's views, which is compliance data, not
team management (supervisors have the wallboard). A compliance officer gets an admin token.

A phone that belongs to another customer is 409 `conflict` naming the owner. Rule and
customer changes reach the next call without a restart through the tables' NOTIFY triggers
(sql/010), which empty the rule and caller-lookup caches.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from aiohttp import web

from bridge.config import Config
from bridge.crm import audit, customers
from bridge.crm.agents import Agent, authenticate, hash_token, validate_agent
from bridge.crm.phones import normalise
from bridge.errors import CrmUnavailable, NotFound, ValidationError
from bridge.records import query as call_query
from bridge.routing.rules import Rule, make_rule
from bridge.routing.store import (
    RULE_COLUMNS,
    RULES_LOCK,
    insert_rule,
    renumber,
    rule_from_row,
    rule_values,
)
from bridge.routing.store import delete_rule as delete_rule_row
from bridge.wallboard.board import WallBoard
from bridge.web.errors import ApiError, Handler, error_middleware, invalid, read_json
from bridge.web.openapi import openapi_document

if TYPE_CHECKING:
    from bridge.crm.customers import Conn

log = logging.getLogger(__name__)

BODY_LIMIT = 64 * 1024
_AGENT_KEY = web.RequestKey("bridge_admin_agent", Agent)
_DB_DOWN = (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError)


@dataclass
class AdminDeps:
    pool: asyncpg.Pool[Any]
    config: Config
    board: WallBoard | None = None  # GET /api/queues: the wallboard's figures


# Read-only routes supervisors may use too (the wallboard); everything else is admin only.
_SUPERVISOR_ROUTES = frozenset({("GET", "/api/queues")})


ADMIN_DEPS = web.AppKey("bridge_admin_deps", AdminDeps)


# --- middlewares ------------------------------------------------------------------------


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer token of an active admin, checked before anything else (also before 404s)."""
    deps = request.config_dict[ADMIN_DEPS]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="crm-bridge"'}
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <token>", headers=challenge)
    agent = await authenticate(deps.pool, token.strip())
    if agent is None:
        raise ApiError(401, "unauthorized", "unknown or inactive token", headers=challenge)
    supervisor_ok = (request.method, request.path) in _SUPERVISOR_ROUTES
    if agent.role != "admin" and not (supervisor_ok and agent.role == "supervisor"):
        wanted = "a supervisor or an admin" if supervisor_ok else "an admin"
        raise ApiError(403, "forbidden", f"agent {agent.id} is not {wanted}")
    request[_AGENT_KEY] = agent
    return await handler(request)


@web.middleware
async def db_errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The database adapter boundary: a lost connection is 503, not a stack trace."""
    try:
        return await handler(request)
    except _DB_DOWN as exc:
        raise CrmUnavailable(str(exc)) from exc
    except asyncpg.IntegrityConstraintViolationError as exc:  # a race the checks did not see
        raise ApiError(409, "conflict", exc.detail or exc.message) from exc


def _actor(request: web.Request) -> str:
    agent: Agent = request[_AGENT_KEY]
    return agent.id


def _deps(request: web.Request) -> AdminDeps:
    return request.config_dict[ADMIN_DEPS]


def _check_fields(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for key in body:
        if key not in allowed:
            raise invalid(key[:80], f"unknown field; allowed: {', '.join(sorted(allowed))}")


def _validated(exc: ValidationError) -> ApiError:
    return invalid(exc.field, exc.reason)


# --- rules ------------------------------------------------------------------------------

_RULE_FIELDS = frozenset(
    {
        "name",
        "queue",
        "priority",
        "position",
        "tags_any",
        "tags_all",
        "unknown_caller",
        "prefix",
        "did",
        "when",
        "attr",
        "enabled",
    }
)


def rule_json(rule: Rule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "position": rule.position,
        "queue": rule.queue,
        "priority": rule.priority,
        "tags_any": list(rule.tags_any),
        "tags_all": list(rule.tags_all),
        "unknown_caller": rule.unknown_caller,
        "prefix": rule.caller_prefix,
        "did": rule.did,
        "when": str(rule.when) if rule.when else None,
        "attr": str(rule.attr) if rule.attr else None,
        "enabled": rule.enabled,
    }


def _rule_spec(body: Mapping[str, Any], base: Mapping[str, Any]) -> Rule:
    """Type-check the JSON fields, then let the routing package's parser check the values."""
    merged = {**base, **{k: v for k, v in body.items() if k != "position"}}
    for key in ("name", "queue"):
        if not isinstance(merged.get(key), str):
            raise invalid(key, "required text")
    priority = merged.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise invalid("priority", "an integer")
    for key in ("tags_any", "tags_all"):
        value = merged.get(key)
        if value is not None and not (
            isinstance(value, str)
            or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        ):
            raise invalid(key, "a list of tags (or 'a,b' text)")
    for key in ("unknown_caller", "enabled"):
        if key in merged and not isinstance(merged[key], bool):
            raise invalid(key, "true or false")
    for key in ("prefix", "did", "when", "attr"):
        if merged.get(key) is not None and not isinstance(merged[key], str):
            raise invalid(key, "text or null")
    try:
        return make_rule(
            merged["name"],
            merged["queue"],
            priority=priority,
            tags_any=merged.get("tags_any"),
            tags_all=merged.get("tags_all"),
            unknown_caller=merged.get("unknown_caller", False),
            caller_prefix=merged.get("prefix"),
            did=merged.get("did"),
            when=merged.get("when"),
            attr=merged.get("attr"),
            enabled=merged.get("enabled", True),
        )
    except ValidationError as exc:
        raise _validated(exc) from exc


def _position(body: Mapping[str, Any]) -> int | None:
    value = body.get("position")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid("position", "a positive integer (1 = first)")
    return value


async def _fetch_rule(conn: Conn | asyncpg.Pool[Any], name: str) -> Rule | None:
    row = await conn.fetchrow(f"SELECT {RULE_COLUMNS} FROM routing_rules WHERE name = $1", name)
    return None if row is None else rule_from_row(row)


async def _move_rule(conn: Conn, name: str, position: int) -> None:
    """Put `name` at `position` (1-based; past the end = last), the others keeping order."""
    await conn.execute(
        "UPDATE routing_rules r SET position = o.n * 2"
        " FROM (SELECT name, row_number() OVER (ORDER BY position, name) AS n"
        "       FROM routing_rules WHERE name <> $1) o WHERE r.name = o.name",
        name,
    )
    await conn.execute(
        "UPDATE routing_rules SET position = $2 * 2 - 1, updated_at = now() WHERE name = $1",
        name,
        min(position, 1_000_000),
    )
    await renumber(conn)


async def list_rules(request: web.Request) -> web.Response:
    rows = await _deps(request).pool.fetch(
        f"SELECT {RULE_COLUMNS} FROM routing_rules ORDER BY position, name"
    )
    rules = []
    for row in rows:
        try:
            rules.append(rule_json(rule_from_row(row)))
        except ValidationError as exc:  # edited by hand into something unparsable
            rules.append({"name": row["name"], "position": row["position"], "error": str(exc)})
    return web.json_response({"rules": rules})


async def get_rule(request: web.Request) -> web.Response:
    rule = await _fetch_rule(_deps(request).pool, request.match_info["name"])
    if rule is None:
        raise NotFound(f"no routing rule named {request.match_info['name'][:80]!r}")
    return web.json_response(rule_json(rule))


async def create_rule(request: web.Request) -> web.Response:
    body = await read_json(request, limit=BODY_LIMIT)
    _check_fields(body, _RULE_FIELDS)
    rule = _rule_spec(body, {})
    position = _position(body)
    async with _deps(request).pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", RULES_LOCK)
        if await conn.fetchval("SELECT 1 FROM routing_rules WHERE name = $1", rule.name):
            raise ApiError(409, "conflict", f"rule {rule.name} already exists", field="name")
        created = await insert_rule(conn, rule, position=position)
        await _audit(conn, request, "rule.create", "rule", rule.name, None, rule_json(created))
    return web.json_response(rule_json(created), status=201)


async def update_rule(request: web.Request) -> web.Response:
    """PATCH merges the given fields; PUT replaces the conditions (absent ones cleared)."""
    name = request.match_info["name"]
    body = await read_json(request, limit=BODY_LIMIT)
    _check_fields(body, _RULE_FIELDS)
    if "name" in body and body["name"] != name:
        raise invalid("name", "a rule cannot be renamed; create a new one and delete this")
    position = _position(body)
    async with _deps(request).pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", RULES_LOCK)
        before = await _fetch_rule(conn, name)
        if before is None:
            raise NotFound(f"no routing rule named {name[:80]!r}")
        base = rule_json(before) if request.method == "PATCH" else {"name": name}
        if request.method == "PUT" and "queue" not in body:
            raise invalid("queue", "required text")
        rule = _rule_spec(body, base)
        await conn.execute(
            "UPDATE routing_rules SET queue = $2, priority = $3, tags_any = $4, tags_all = $5,"
            " unknown_caller = $6, caller_prefix = $7, did = $8, when_spec = $9,"
            " attr_spec = $10, enabled = $11, updated_at = now() WHERE name = $1",
            name,
            *rule_values(rule),
        )
        if position is not None:
            await _move_rule(conn, name, position)
        after = await _fetch_rule(conn, name)
        assert after is not None
        await _audit(
            conn, request, "rule.update", "rule", name, rule_json(before), rule_json(after)
        )
    return web.json_response(rule_json(after))


async def delete_rule(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    async with _deps(request).pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", RULES_LOCK)
        before = await _fetch_rule(conn, name)
        if before is None:
            raise NotFound(f"no routing rule named {name[:80]!r}")
        await delete_rule_row(conn, name)
        await _audit(conn, request, "rule.delete", "rule", name, rule_json(before), None)
    return web.json_response({"deleted": rule_json(before)})


# --- agents -----------------------------------------------------------------------------

_AGENT_COLUMNS = "id, name, role, device, active"


def agent_json(agent: Agent | Mapping[str, Any]) -> dict[str, Any]:
    data = asdict(agent) if isinstance(agent, Agent) else dict(agent)
    return {k: data[k] for k in ("id", "name", "role", "device", "active")}


async def _fetch_agent(conn: Conn | asyncpg.Pool[Any], aid: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {_AGENT_COLUMNS} FROM agents WHERE id = $1", aid)
    return None if row is None else agent_json(row)


async def list_agents(request: web.Request) -> web.Response:
    rows = await _deps(request).pool.fetch(f"SELECT {_AGENT_COLUMNS} FROM agents ORDER BY id")
    return web.json_response({"agents": [agent_json(r) for r in rows]})


async def get_agent(request: web.Request) -> web.Response:
    agent = await _fetch_agent(_deps(request).pool, request.match_info["id"])
    if agent is None:
        raise NotFound(f"no agent {request.match_info['id'][:64]!r}")
    return web.json_response(agent)


def _agent_fields(body: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**base, **body}
    for key in ("id", "name", "role", "device"):
        if not isinstance(merged.get(key), str):
            raise invalid(key, "required text")
    if not isinstance(merged.get("active", True), bool):
        raise invalid("active", "true or false")
    try:
        merged["name"] = customers.text_field(merged["name"], "name", max_len=200)
        validate_agent(merged["id"], merged["name"], merged["role"], merged["device"])
    except ValidationError as exc:
        raise _validated(exc) from exc
    return merged


async def _agent_conflicts(conn: Conn, aid: str, device: str) -> None:
    owner = await conn.fetchval("SELECT id FROM agents WHERE device = $1 AND id <> $2", device, aid)
    if owner is not None:
        raise ApiError(409, "conflict", f"device {device} belongs to agent {owner}", field="device")


async def create_agent(request: web.Request) -> web.Response:
    body = await read_json(request, limit=BODY_LIMIT)
    _check_fields(body, frozenset({"id", "name", "role", "device"}))
    aid = body.get("id")
    fields = _agent_fields(body, {"role": "agent", "device": aid})
    token = secrets.token_urlsafe(32)
    async with _deps(request).pool.acquire() as conn, conn.transaction():
        if await _fetch_agent(conn, fields["id"]) is not None:
            raise ApiError(409, "conflict", f"agent {fields['id']} already exists", field="id")
        await _agent_conflicts(conn, fields["id"], fields["device"])
        await conn.execute(
            "INSERT INTO agents (id, name, role, device, token_hash) VALUES ($1, $2, $3, $4, $5)",
            fields["id"],
            fields["name"],
            fields["role"],
            fields["device"],
            hash_token(token),
        )
        created = await _fetch_agent(conn, fields["id"])
        await _audit(conn, request, "agent.create", "agent", fields["id"], None, created)
    assert created is not None
    return web.json_response({**created, "token": token}, status=201)


async def update_agent(request: web.Request) -> web.Response:
    aid = request.match_info["id"]
    body = await read_json(request, limit=BODY_LIMIT)
    _check_fields(body, frozenset({"name", "role", "device", "active"}))
    async with _deps(request).pool.acquire() as conn, conn.transaction():
        before = await _lock_agent(conn, aid)
        fields = _agent_fields(body, before)
        if aid == _actor(request) and (fields["role"] != "admin" or not fields["active"]):
            raise ApiError(409, "conflict", "an admin cannot demote or deactivate themself")
        await _agent_conflicts(conn, aid, fields["device"])
        await conn.execute(
            "UPDATE agents SET name = $2, role = $3, device = $4, active = $5, updated_at = now()"
            " WHERE id = $1",
            aid,
            fields["name"],
            fields["role"],
            fields["device"],
            fields["active"],
        )
        after = await _fetch_agent(conn, aid)
        await _audit(conn, request, "agent.update", "agent", aid, before, after)
    return web.json_response(after)


async def deactivate_agent(request: web.Request) -> web.Response:
    aid = request.match_info["id"]
    if aid == _actor(request):
        raise ApiError(409, "conflict", "an admin cannot deactivate themself")
    async with _deps(request).pool.acquire() as conn, conn.transaction():
        before = await _lock_agent(conn, aid)
        await conn.execute(
            "UPDATE agents SET active = false, updated_at = now() WHERE id = $1", aid
        )
        after = await _fetch_agent(conn, aid)
        await _audit(conn, request, "agent.deactivate", "agent", aid, before, after)
    return web.json_response(after)


async def rotate_agent_token(request: web.Request) -> web.Response:
    aid = request.match_info["id"]
    token = secrets.token_urlsafe(32)
    async with _deps(request).pool.acquire() as conn, conn.transaction():
        before = await _lock_agent(conn, aid)
        await conn.execute(
            "UPDATE agents SET token_hash = $2, updated_at = now() WHERE id = $1",
            aid,
            hash_token(token),
        )
        await _audit(conn, request, "agent.token", "agent", aid, before, before)
    return web.json_response({**before, "token": token})


async def _lock_agent(conn: Conn, aid: str) -> dict[str, Any]:
    row = await conn.fetchrow(f"SELECT {_AGENT_COLUMNS} FROM agents WHERE id = $1 FOR UPDATE", aid)
    if row is None:
        raise NotFound(f"no agent {aid[:64]!r}")
    return agent_json(row)


# --- customers --------------------------------------------------------------------------

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
        raise _validated(exc) from exc
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


def _only_params(query: Mapping[str, str], allowed: frozenset[str]) -> None:
    """Unknown or repeated query parameters are 400: a typo must not widen a search."""
    for key in query:
        if key not in allowed:
            raise invalid(key[:80], f"unknown parameter; allowed: {', '.join(sorted(allowed))}")
        if len(query.getall(key)) > 1:  # type: ignore[attr-defined]
            raise invalid(key, "given more than once")


def _limit(query: Mapping[str, str], top: int) -> int:
    text = query.get("limit", "100")
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= top:
        raise invalid("limit", f"an integer from 1 to {top}")
    return int(text)


async def search_customers(request: web.Request) -> web.Response:
    deps = _deps(request)
    query = request.query
    _only_params(query, _CUSTOMER_PARAMS)
    region = deps.config.pbx.default_region
    if "phone" in query:
        e164 = normalise(query["phone"], region)
        if e164 is None:
            raise invalid("phone", "not a valid phone number")
        cid = await customers.find_by_phone(deps.pool, e164)
        found = await customers.get(deps.pool, cid) if cid else None
        return web.json_response({"customers": [found] if found else []})
    limit = _limit(query, 500)
    after = _plain_param(query, "after", _PLAIN) or ""
    if "q" in query:
        text = query["q"].strip()
        if not text or not _PLAIN.fullmatch(text):
            raise invalid("q", "1-200 characters of text, without control characters")
        page = await customers.search(
            deps.pool, text, normalise(text, region), after=after, limit=limit
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
    _check_fields(body, _CUSTOMER_FIELDS)
    try:
        cid = customers.customer_id(body["id"]) if "id" in body else "c-" + secrets.token_hex(8)
    except ValidationError as exc:
        raise _validated(exc) from exc
    fields = _customer_fields(body, deps.config.pbx.default_region, full=True)
    async with deps.pool.acquire() as conn, conn.transaction():
        if await customers.lock(conn, cid) is not None:
            raise ApiError(409, "conflict", f"customer {cid} already exists", field="id")
        await _write_customer(conn, cid, fields, None)
        after = await customers.get(conn, cid)
        await _audit(
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
        raise _validated(exc) from exc
    body = await read_json(request, limit=BODY_LIMIT)
    _check_fields(body, _CUSTOMER_FIELDS)
    if "id" in body and body["id"] != cid:
        raise invalid("id", "does not match the URL; a customer cannot be renamed")
    full = request.method == "PUT"
    fields = _customer_fields(body, deps.config.pbx.default_region, full=full)
    async with deps.pool.acquire() as conn, conn.transaction():
        before = await customers.lock(conn, cid)
        if before is None and not full:
            raise NotFound(f"no customer {cid[:128]!r}")
        await _write_customer(conn, cid, fields, before)
        await customers.touch(conn, cid)
        after = await customers.get(conn, cid)
        action = "customer.update" if before else "customer.create"
        await _audit(
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
        await _audit(
            conn, request, "customer.delete", "customer", cid, customers.snapshot(before), None
        )
    return web.json_response({"deleted": before})


# --- calls and audit --------------------------------------------------------------------

CALL_COLUMNS = (
    "call_id",
    "caller",
    "customer_id",
    "did",
    "queue",
    "rule",
    "agents",
    "started_at",
    "answered_at",
    "ended_at",
    "duration_s",
    "talk_s",
    "outcome",
    "recording_path",
    "disposition",
    "notes",
    "degraded",
    "inferred",
    "direction",
    "source",
)


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


async def get_call(request: web.Request) -> web.Response:
    call_id = request.match_info["call_id"]
    row = await _deps(request).pool.fetchrow(
        f"SELECT {', '.join(CALL_COLUMNS)} FROM call_records WHERE call_id = $1", call_id
    )
    if row is None:
        raise NotFound(f"no call record {call_id[:150]!r}")
    record = {k: _json_value(row[k]) for k in CALL_COLUMNS}
    record["inferred"] = list(record["inferred"] or [])
    return web.json_response(record)


_CALL_PARAMS = frozenset(
    {"since", "until", "agent", "queue", "outcome", "customer", "direction", "limit", "cursor"}
)
_QUEUE = re.compile(r"[A-Za-z0-9_.-]{1,80}")


async def list_calls(request: web.Request) -> web.Response:
    """`GET /api/calls`: finished call records, newest first, filtered, in keyset pages."""
    query = request.query
    _only_params(query, _CALL_PARAMS)
    limit = _limit(query, 500)
    cursor = None
    if "cursor" in query:
        try:
            cursor = call_query.CallCursor.decode(query["cursor"])
        except ValueError as exc:
            raise invalid("cursor", "not a cursor this API gave (use the `next` value)") from exc
    since, until = _time_param(query, "since"), _time_param(query, "until")
    if since is not None and until is not None and since >= until:
        raise invalid("until", "must be later than since")
    for key, allowed in (("outcome", call_query.OUTCOMES), ("direction", call_query.DIRECTIONS)):
        if key in query and query[key] not in allowed:
            raise invalid(key, " or ".join(allowed))
    where = call_query.CallFilter(
        since=since,
        until=until,
        agent=_plain_param(query, "agent", _AGENT_ID),
        queue=_plain_param(query, "queue", _QUEUE),
        outcome=query.get("outcome"),
        customer=_plain_param(query, "customer", _PLAIN),
        direction=query.get("direction"),
    )
    rows, after = await call_query.list_calls(
        _deps(request).pool, CALL_COLUMNS, where, limit=limit, cursor=cursor
    )
    calls = []
    for row in rows:
        record = {k: _json_value(v) for k, v in row.items()}
        record["inferred"] = list(record["inferred"] or [])
        calls.append(record)
    return web.json_response({"calls": calls, "next": after.encode() if after else None})


_AUDIT_PARAMS = frozenset(
    {"customer", "agent", "call", "since", "until", "kind", "limit", "cursor", "target_type",
     "target_id"}
)  # fmt: skip
_AGENT_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_CALL_ID = re.compile(r"[A-Za-z0-9_.:-]{1,150}")
_PLAIN = re.compile(r"[^\x00-\x1f\x7f]{1,200}")


def _plain_param(query: Mapping[str, str], key: str, pattern: re.Pattern[str]) -> str | None:
    value = query.get(key)
    if value is None:
        return None
    if not pattern.fullmatch(value):
        raise invalid(key, "not a valid id")
    return value


def _time_param(query: Mapping[str, str], key: str) -> datetime | None:
    value = query.get(key)
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value) if len(value) <= 40 else None
    except ValueError:
        when = None
    if when is None:
        raise invalid(key, "an ISO-8601 time, e.g. 2026-11-01T00:00:00Z (write + as %2B)")
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _audit_filter(request: web.Request) -> tuple[audit.AuditFilter, int, audit.Cursor | None]:
    """Every query parameter checked: unknown, repeated or malformed ones are 400."""
    query = request.query
    for key in query:
        if key not in _AUDIT_PARAMS:
            raise invalid(
                key[:80], f"unknown parameter; allowed: {', '.join(sorted(_AUDIT_PARAMS))}"
            )
        if len(query.getall(key)) > 1:
            raise invalid(key, "given more than once")
    limit_text = query.get("limit", "100")
    if not limit_text.isascii() or not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
        raise invalid("limit", "an integer from 1 to 1000")
    kind = query.get("kind")
    if kind is not None and kind not in audit.KINDS:
        raise invalid("kind", "card_view or change")
    cursor = None
    if "cursor" in query:
        try:
            cursor = audit.Cursor.decode(query["cursor"])
        except ValueError as exc:
            raise invalid("cursor", "not a cursor this API gave (use the `next` value)") from exc
    since, until = _time_param(query, "since"), _time_param(query, "until")
    if since is not None and until is not None and since >= until:
        raise invalid("until", "must be later than since")
    where = audit.AuditFilter(
        customer=_plain_param(query, "customer", _PLAIN),
        agent=_plain_param(query, "agent", _AGENT_ID),
        call=_plain_param(query, "call", _CALL_ID),
        since=since,
        until=until,
        kind=kind,  # type: ignore[arg-type]  # checked against audit.KINDS above
        target_type=_plain_param(query, "target_type", _PLAIN),
        target_id=_plain_param(query, "target_id", _PLAIN),
    )
    return where, int(limit_text), cursor


async def list_audit(request: web.Request) -> web.Response:
    where, limit, cursor = _audit_filter(request)
    entries, after = await audit.search(_deps(request).pool, where, limit=limit, cursor=cursor)
    return web.json_response({"entries": entries, "next": after.encode() if after else None})


async def list_queues(request: web.Request) -> web.Response:
    """The wallboard's figures per queue (supervisors and admins)."""
    deps = _deps(request)
    if deps.board is None:
        raise ApiError(503, "unavailable", "the wallboard is not running")
    await deps.board.ready()
    stats = [s.as_json() for s in deps.board.all_stats()]
    return web.json_response({"sla_s": deps.config.wallboard.sla_s, "queues": stats})


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


async def _audit(
    conn: Conn,
    request: web.Request,
    action: str,
    target_type: str,
    target_id: str,
    before: Any,
    after: Any,
) -> None:
    await audit.record(
        conn,
        actor=_actor(request),
        action=action,
        target_type=target_type,
        target_id=target_id,
        before=before,
        after=after,
    )


async def dial_for_agent(request: web.Request) -> web.Response:
    from bridge.dial.routes import admin_dial

    return await admin_dial(request, actor=_actor(request))


# --- wiring -----------------------------------------------------------------------------


def setup_admin_routes(app: web.Application, deps: AdminDeps) -> web.Application:
    """Mount the admin API on `app` under /api/ (a sub-application with its own middlewares:
    JSON errors, then admin authentication, then database-error mapping)."""
    api = web.Application(
        middlewares=[error_middleware, auth_middleware, db_errors_middleware],
        client_max_size=BODY_LIMIT,
    )
    api[ADMIN_DEPS] = deps
    r = api.router
    r.add_get("/rules", list_rules)
    r.add_post("/rules", create_rule)
    r.add_get("/rules/{name}", get_rule)
    r.add_patch("/rules/{name}", update_rule)
    r.add_put("/rules/{name}", update_rule)
    r.add_delete("/rules/{name}", delete_rule)
    r.add_get("/agents", list_agents)
    r.add_post("/agents", create_agent)
    r.add_get("/agents/{id}", get_agent)
    r.add_patch("/agents/{id}", update_agent)
    r.add_delete("/agents/{id}", deactivate_agent)
    r.add_post("/agents/{id}/token", rotate_agent_token)
    r.add_get("/customers", search_customers)
    r.add_post("/customers", create_customer)
    r.add_get("/customers/{id:.+}", get_customer)
    r.add_put("/customers/{id:.+}", put_customer)
    r.add_patch("/customers/{id:.+}", put_customer)
    r.add_delete("/customers/{id:.+}", delete_customer)
    r.add_get("/calls", list_calls)
    r.add_get("/calls/{call_id}", get_call)
    r.add_get("/queues", list_queues)
    r.add_get("/audit", list_audit)
    r.add_get("/openapi.json", get_openapi)
    r.add_post("/dial", dial_for_agent)
    app.add_subapp("/api/", api)
    return api


__all__ = ["ADMIN_DEPS", "AdminDeps", "setup_admin_routes"]
