"""The routing rules in the admin API (`bridge.web.admin_api`; admins only).

    GET    /api/rules                   {"rules": [rule, ...]} in position order
    POST   /api/rules                   create; `position` (1 = first) shifts the others → 201
    GET    /api/rules/{name}
    PATCH  /api/rules/{name}            change some fields; `position` moves the rule
    PUT    /api/rules/{name}            replace every condition (absent ones are cleared)
    DELETE /api/rules/{name}            → {"deleted": rule}

Every change writes one `audit_log` row in its transaction, under the rules' advisory lock.
Changes reach the next call without a restart through the table's NOTIFY trigger (sql/010),
which empties the rule store's cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import asyncpg
from aiohttp import web

from bridge.crm.audit_api import audit_change
from bridge.errors import NotFound, ValidationError
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
from bridge.web.admin_api import BODY_LIMIT
from bridge.web.errors import ApiError, invalid, read_json
from bridge.web.params import check_fields, validated

if TYPE_CHECKING:
    from bridge.crm.customers import Conn

__all__ = ["rule_json", "setup_rules_api"]

_POOL = web.AppKey("bridge_rules_api_pool", asyncpg.Pool)


def _pool(request: web.Request) -> asyncpg.Pool[Any]:
    return request.config_dict[_POOL]


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
        raise validated(exc) from exc


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
    rows = await _pool(request).fetch(
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
    rule = await _fetch_rule(_pool(request), request.match_info["name"])
    if rule is None:
        raise NotFound(f"no routing rule named {request.match_info['name'][:80]!r}")
    return web.json_response(rule_json(rule))


async def create_rule(request: web.Request) -> web.Response:
    body = await read_json(request, limit=BODY_LIMIT)
    check_fields(body, _RULE_FIELDS)
    rule = _rule_spec(body, {})
    position = _position(body)
    async with _pool(request).acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", RULES_LOCK)
        if await conn.fetchval("SELECT 1 FROM routing_rules WHERE name = $1", rule.name):
            raise ApiError(409, "conflict", f"rule {rule.name} already exists", field="name")
        created = await insert_rule(conn, rule, position=position)
        await audit_change(
            conn, request, "rule.create", "rule", rule.name, None, rule_json(created)
        )
    return web.json_response(rule_json(created), status=201)


async def update_rule(request: web.Request) -> web.Response:
    """PATCH merges the given fields; PUT replaces the conditions (absent ones cleared)."""
    name = request.match_info["name"]
    body = await read_json(request, limit=BODY_LIMIT)
    check_fields(body, _RULE_FIELDS)
    if "name" in body and body["name"] != name:
        raise invalid("name", "a rule cannot be renamed; create a new one and delete this")
    position = _position(body)
    async with _pool(request).acquire() as conn, conn.transaction():
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
        await audit_change(
            conn, request, "rule.update", "rule", name, rule_json(before), rule_json(after)
        )
    return web.json_response(rule_json(after))


async def delete_rule(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    async with _pool(request).acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", RULES_LOCK)
        before = await _fetch_rule(conn, name)
        if before is None:
            raise NotFound(f"no routing rule named {name[:80]!r}")
        await delete_rule_row(conn, name)
        await audit_change(conn, request, "rule.delete", "rule", name, rule_json(before), None)
    return web.json_response({"deleted": rule_json(before)})


def setup_rules_api(api: web.Application, pool: asyncpg.Pool[Any]) -> None:
    """Mount the rule routes on the admin API."""
    api[_POOL] = pool
    r = api.router
    r.add_get("/rules", list_rules)
    r.add_post("/rules", create_rule)
    r.add_get("/rules/{name}", get_rule)
    r.add_patch("/rules/{name}", update_rule)
    r.add_put("/rules/{name}", update_rule)
    r.add_delete("/rules/{name}", delete_rule)
