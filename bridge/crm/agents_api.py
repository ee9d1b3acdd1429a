"""The agents in the admin API (`bridge.web.admin_api`; admins only). Their SQL is in
`bridge.crm.agents`; tokens are shown once and never listed.

    GET    /api/agents                  {"agents": [agent, ...]} (never tokens or hashes)
    POST   /api/agents                  {id, name, role?, device?, pbx?} → 201 agent + "token"
    GET    /api/agents/{id}             {id, name, role, device, active, pbx}
    PATCH  /api/agents/{id}             {name?, role?, device?, active?, pbx?}
    DELETE /api/agents/{id}             deactivate (the row stays: records refer to it)
    POST   /api/agents/{id}/token       a fresh token; the old one stops working

`pbx` is the `[[pbx]]` entry the device is on: one of the configured names (else 400),
the first entry's when a new agent leaves it out; with a single PBX it is always ''. A device
that belongs to another agent on the same PBX is 409 `conflict` (`1001` on east and `1001` on
west are two devices); an admin cannot demote or deactivate themself. Every change writes
one `audit_log` row in its transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
from aiohttp import web

from bridge.crm import agents, customers
from bridge.crm.agents import Agent, hash_token, validate_agent
from bridge.crm.audit_api import audit_change
from bridge.errors import NotFound, ValidationError
from bridge.web.admin_api import BODY_LIMIT
from bridge.web.auth import admin_actor
from bridge.web.errors import ApiError, invalid, read_json
from bridge.web.params import check_fields, validated

if TYPE_CHECKING:
    from bridge.crm.customers import Conn

__all__ = ["agent_json", "setup_agents_api"]


@dataclass(frozen=True)
class _Site:
    pool: asyncpg.Pool[Any]
    pbxs: tuple[str, ...]  # the `[[pbx]]` names in configuration order; () with a single PBX


_SITE = web.AppKey("bridge_agents_api", _Site)


def _pool(request: web.Request) -> asyncpg.Pool[Any]:
    return request.config_dict[_SITE].pool


def agent_json(agent: Agent | Mapping[str, Any]) -> dict[str, Any]:
    data = asdict(agent) if isinstance(agent, Agent) else dict(agent)
    return {k: data[k] for k in ("id", "name", "role", "device", "active", "pbx")}


async def _fetch_agent(conn: Conn | asyncpg.Pool[Any], aid: str) -> dict[str, Any] | None:
    row = await agents.agent_row(conn, aid)
    return None if row is None else agent_json(row)


async def list_agents(request: web.Request) -> web.Response:
    rows = await agents.agent_rows(_pool(request))
    return web.json_response({"agents": [agent_json(r) for r in rows]})


async def get_agent(request: web.Request) -> web.Response:
    agent = await _fetch_agent(_pool(request), request.match_info["id"])
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
        raise validated(exc) from exc
    return merged


def _pbx_field(body: Mapping[str, Any], pbxs: Sequence[str], base: str | None) -> str:
    """The agent's PBX: the body's, checked against the configuration, else `base` (the
    agent's own, kept as it is) or for a new agent the first PBX's ('' with one PBX)."""
    if "pbx" not in body:
        return base if base is not None else (pbxs[0] if pbxs else "")
    pbx = body["pbx"]
    if not pbxs:
        if pbx != "":
            raise invalid("pbx", "'' (this bridge serves a single PBX)")
        return ""
    if not isinstance(pbx, str) or pbx not in pbxs:
        raise invalid("pbx", "one of the configured [[pbx]] names: " + ", ".join(pbxs))
    return pbx


async def _agent_conflicts(conn: Conn, aid: str, pbx: str, device: str) -> None:
    owner = await agents.device_owner(conn, pbx, device, other_than=aid)
    if owner is not None:
        where = f" on {pbx}" if pbx else ""
        raise ApiError(
            409, "conflict", f"device {device}{where} belongs to agent {owner}", field="device"
        )


async def create_agent(request: web.Request) -> web.Response:
    body = await read_json(request, limit=BODY_LIMIT)
    check_fields(body, frozenset({"id", "name", "role", "device", "pbx"}))
    aid = body.get("id")
    fields = _agent_fields(body, {"role": "agent", "device": aid})
    pbx = _pbx_field(body, request.config_dict[_SITE].pbxs, None)
    token = secrets.token_urlsafe(32)
    async with _pool(request).acquire() as conn, conn.transaction():
        if await _fetch_agent(conn, fields["id"]) is not None:
            raise ApiError(409, "conflict", f"agent {fields['id']} already exists", field="id")
        await _agent_conflicts(conn, fields["id"], pbx, fields["device"])
        await agents.insert_agent(
            conn,
            fields["id"],
            fields["name"],
            fields["role"],
            fields["device"],
            hash_token(token),
            pbx,
        )
        created = await _fetch_agent(conn, fields["id"])
        await audit_change(conn, request, "agent.create", "agent", fields["id"], None, created)
    assert created is not None
    return web.json_response({**created, "token": token}, status=201)


async def update_agent(request: web.Request) -> web.Response:
    aid = request.match_info["id"]
    body = await read_json(request, limit=BODY_LIMIT)
    check_fields(body, frozenset({"name", "role", "device", "active", "pbx"}))
    async with _pool(request).acquire() as conn, conn.transaction():
        before = await _lock_agent(conn, aid)
        fields = _agent_fields(body, before)
        pbx = _pbx_field(body, request.config_dict[_SITE].pbxs, before["pbx"])
        if aid == admin_actor(request) and (fields["role"] != "admin" or not fields["active"]):
            raise ApiError(409, "conflict", "an admin cannot demote or deactivate themself")
        await _agent_conflicts(conn, aid, pbx, fields["device"])
        await agents.update_agent(
            conn,
            aid,
            name=fields["name"],
            role=fields["role"],
            device=fields["device"],
            active=fields["active"],
            pbx=pbx,
        )
        after = await _fetch_agent(conn, aid)
        await audit_change(conn, request, "agent.update", "agent", aid, before, after)
    return web.json_response(after)


async def deactivate_agent(request: web.Request) -> web.Response:
    aid = request.match_info["id"]
    if aid == admin_actor(request):
        raise ApiError(409, "conflict", "an admin cannot deactivate themself")
    async with _pool(request).acquire() as conn, conn.transaction():
        before = await _lock_agent(conn, aid)
        await agents.deactivate_agent(conn, aid)
        after = await _fetch_agent(conn, aid)
        await audit_change(conn, request, "agent.deactivate", "agent", aid, before, after)
    return web.json_response(after)


async def rotate_agent_token(request: web.Request) -> web.Response:
    aid = request.match_info["id"]
    token = secrets.token_urlsafe(32)
    async with _pool(request).acquire() as conn, conn.transaction():
        before = await _lock_agent(conn, aid)
        await agents.set_token_hash(conn, aid, hash_token(token))
        await audit_change(conn, request, "agent.token", "agent", aid, before, before)
    return web.json_response({**before, "token": token})


async def _lock_agent(conn: Conn, aid: str) -> dict[str, Any]:
    row = await agents.agent_row(conn, aid, for_update=True)
    if row is None:
        raise NotFound(f"no agent {aid[:64]!r}")
    return agent_json(row)


def setup_agents_api(
    api: web.Application, pool: asyncpg.Pool[Any], pbxs: Sequence[str] = ()
) -> None:
    """Mount the agent routes on the admin API; `pbxs` are the `[[pbx]]` names (none with
    a single PBX)."""
    api[_SITE] = _Site(pool, tuple(pbxs))
    r = api.router
    r.add_get("/agents", list_agents)
    r.add_post("/agents", create_agent)
    r.add_get("/agents/{id}", get_agent)
    r.add_patch("/agents/{id}", update_agent)
    r.add_delete("/agents/{id}", deactivate_agent)
    r.add_post("/agents/{id}/token", rotate_agent_token)
