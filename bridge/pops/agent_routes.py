"""The agent page on the `[http]` port.

    GET  /agent                                   the page (static HTML, no build step)
    GET  /agent/static/{agent.js,agent.css}       its script and style
    GET  /agent/config.json                       {"pops_port": N, "pops_url": str|null,
                                                   "tag_colors": {tag: css colour},
                                                   "customer_url": "...{id}..." | "",
                                                   "sla_s": N}
    POST /agent/api/calls/{call_id}/disposition   Authorization: Bearer <agent token>
         body {"disposition": "resolved"|"follow_up"|"complaint", "notes": "...",
               "agent": "<whose part>" (optional; supervisors and admins amend others')}
         200 {"call_id", "agent", "disposition", "notes", "filed_by"}; 400 naming the field;
         401 bad token; 403 the agent did not talk on the call (rung only, not involved) or
         names another agent; 404 no such call (nothing is written).

The page logs in with the agent's token (kept in sessionStorage), opens the pop websocket
(`bridge.pops.protocol`) and renders every value as text; the app's Content-Security-Policy
(script-src 'self') forbids inline script on top of that. The desk's other routes (create a
customer, my calls today) and the wallboard page: `bridge.pops.desk`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import asyncpg
from aiohttp import web

from bridge.crm.agents import Agent, authenticate
from bridge.pbx.regions import PbxRegions
from bridge.pops.desk import setup_desk_routes
from bridge.pops.disposition import CallNotFound, Filed, NotYourCall, save_disposition
from bridge.web.errors import ApiError, invalid, read_json

__all__ = ["AgentDeps", "setup_agent_routes"]

_STATIC = {
    "agent.js": "text/javascript",
    "agent.css": "text/css",
}


@dataclass
class AgentDeps:
    pool: asyncpg.Pool[Any]
    pops_port: int | Callable[[], int]  # a callable when the hub binds port 0
    pops_url: str | None = None  # e.g. wss://pops.example/ behind a proxy
    authenticate: Callable[[str], Awaitable[Agent | None]] | None = None
    settle: Callable[[], Awaitable[None]] | None = None  # participant writes under way land
    # Numbers typed on the desk read in the agent's own PBX's region.
    regions: PbxRegions = field(default_factory=PbxRegions)
    timezone: str = "UTC"  # [routing] timezone: what "today" means
    tag_colors: Mapping[str, str] = field(default_factory=dict)  # [pops] tag_colors
    customer_url: str = ""  # [crm] customer_url
    sla_s: int = 20  # [wallboard] sla_s
    # The CRM connector the desk creates and corrects customers through; None (or the
    # built-in one): the built-in store on `pool`.
    connector: Any = None
    agents_edit: str = "own"  # [permissions] agents_edit


AGENT_DEPS = web.AppKey("agent_deps", AgentDeps)
_DISPOSITION_FIELDS = frozenset({"agent", "disposition", "notes"})


def _asset(name: str) -> bytes:
    return resources.files("bridge.pops").joinpath("static", name).read_bytes()


async def agent_page(request: web.Request) -> web.Response:
    return web.Response(body=_asset("agent.html"), content_type="text/html", charset="utf-8")


async def agent_static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _STATIC:
        raise web.HTTPNotFound()
    return web.Response(body=_asset(name), content_type=_STATIC[name], charset="utf-8")


async def agent_config(request: web.Request) -> web.Response:
    deps = request.app[AGENT_DEPS]
    port = deps.pops_port() if callable(deps.pops_port) else deps.pops_port
    return web.json_response(
        {
            "pops_port": port,
            "pops_url": deps.pops_url,
            "tag_colors": dict(deps.tag_colors),
            "customer_url": deps.customer_url,
            "sla_s": deps.sla_s,
        }
    )


async def bearer_agent(request: web.Request, deps: AgentDeps) -> Agent:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "unauthorized",
            "send Authorization: Bearer <agent token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    check = deps.authenticate or (lambda t: authenticate(deps.pool, t))
    agent = await check(token.strip())
    if agent is None:
        raise ApiError(
            401, "unauthorized", "wrong or revoked token", headers={"WWW-Authenticate": "Bearer"}
        )
    return agent


async def post_disposition(request: web.Request) -> web.Response:
    deps = request.app[AGENT_DEPS]
    agent = await bearer_agent(request, deps)
    body = await read_json(request, limit=16 * 1024)
    for key in body:
        if key not in _DISPOSITION_FIELDS:
            raise invalid(key[:80], "unknown field; allowed: agent, disposition, notes")
    call_id = request.match_info["call_id"]

    async def file() -> Filed:
        return await save_disposition(
            deps.pool,
            call_id,
            agent,
            body.get("disposition"),
            body.get("notes", ""),
            agent=body.get("agent"),
        )

    try:
        try:
            filed = await file()
        except (NotYourCall, CallNotFound):
            if deps.settle is None:
                raise
            # The page heard "answered" before the row saying so was written: let the
            # participant writes that are under way land, then ask once more.
            await deps.settle()
            filed = await file()
    except NotYourCall as exc:
        raise ApiError(403, "forbidden", str(exc)) from exc
    return web.json_response(
        {
            "call_id": filed.call_id,
            "agent": filed.agent,
            "disposition": filed.disposition,
            "notes": filed.notes,
            "filed_by": filed.filed_by,
        }
    )


def setup_agent_routes(app: web.Application, deps: AgentDeps) -> web.Application:
    app[AGENT_DEPS] = deps
    app.router.add_get("/agent", agent_page)
    app.router.add_get("/agent/", agent_page)
    app.router.add_get("/agent/static/{name}", agent_static)
    app.router.add_get("/agent/config.json", agent_config)
    app.router.add_post("/agent/api/calls/{call_id}/disposition", post_disposition)
    setup_desk_routes(app)
    return app
