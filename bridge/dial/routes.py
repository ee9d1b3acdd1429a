"""Click-to-call over HTTP, and the callback list.

    POST /agent/api/dial        Authorization: Bearer <agent token>
         body {"number": "..."} or {"callback_of": "<call_id>"} (the missed call's number is
         dialled, and the new call is linked to it); "agent", if sent, must be the token's
         own agent: an agent dials only from its own device.
    POST /api/dial              admin token (on the admin API: `setup_admin_dial`)
         body {"agent": "<id>", "number": "..."} (or "callback_of")
    GET  /agent/api/callbacks   agent token: the callers who gave up, oldest first, for the
         queues the agent's device is a member of (supervisors and admins: every queue)

Dial answers: 202 {"call_id", "agent", "number", "callback_of"}; 400 naming the field and
the reason; 401 bad token; 403 a disabled agent or another agent's device; 404 an unknown
agent or missed call; 429 with Retry-After past `[dial] per_minute`; 503 the PBX is not
reachable (502 when it refused the Originate). Refusals change nothing but the audit trail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import web

from bridge.clock import WallClock, utc_now
from bridge.crm.agents import Agent, bridge_device, get_agent
from bridge.dial.callbacks import callback_number, pending_callbacks
from bridge.dial.service import (
    Dialer,
    DialFailed,
    DialForbidden,
    DialRateLimited,
    NumberRefused,
)
from bridge.pbx.regions import PbxRegions
from bridge.pops.agent_routes import AGENT_DEPS, bearer_agent
from bridge.web.auth import admin_actor
from bridge.web.errors import ApiError, invalid, read_json

__all__ = ["DIAL_DEPS", "DialDeps", "admin_dial", "setup_admin_dial", "setup_dial_routes"]

_AGENT_FIELDS = frozenset({"number", "callback_of", "agent"})
_CALL_ID_MAX = 150  # AST_MAX_UNIQUEID


@dataclass
class DialDeps:
    pool: asyncpg.Pool[Any]
    dialer: Dialer | None  # None: no AMI link (dials answer 503)
    callbacks_days: int = 7
    # How national caller IDs read: each missed call's own PBX's region.
    regions: PbxRegions = field(default_factory=PbxRegions)
    # The queues an agent's device is a member of (the wallboard's QueueStatus); None when
    # the PBX has not told yet, in which case the agent sees every queue's callers.
    queues_of: Callable[[str], set[str] | None] = lambda device: None
    now: WallClock = utc_now


DIAL_DEPS = web.AppKey("dial_deps", DialDeps)


def _deps(request: web.Request) -> DialDeps:
    deps = request.config_dict.get(DIAL_DEPS)
    if deps is None:
        raise ApiError(503, "unavailable", "click-to-call is not set up on this bridge")
    return deps


async def _place(
    deps: DialDeps, agent: Agent, body: Mapping[str, Any], *, actor: str
) -> web.Response:
    callback_of = body.get("callback_of")
    number = body.get("number")
    if callback_of is not None:
        if not isinstance(callback_of, str) or not 0 < len(callback_of) <= _CALL_ID_MAX:
            raise invalid("callback_of", "the call_id of a missed call")
        if number is not None:
            raise invalid("number", "send either number or callback_of, not both")
        missed = await callback_number(deps.pool, callback_of)
        if missed is None:
            raise ApiError(404, "not_found", "no missed inbound call with this call_id")
        number = missed[0]
    elif number is None:
        raise invalid("number", "required: the number to dial")
    if deps.dialer is None:
        raise ApiError(503, "unavailable", "no PBX link: click-to-call needs [ami] enabled")
    try:
        dialed = await deps.dialer.dial(agent, number, actor=actor, callback_of=callback_of)
    except NumberRefused as exc:
        raise invalid("number", exc.reason) from exc
    except DialForbidden as exc:
        raise ApiError(403, "forbidden", str(exc)) from exc
    except DialRateLimited as exc:
        raise ApiError(
            429,
            "rate_limited",
            str(exc),
            headers={"Retry-After": str(exc.retry_after_s)},
        ) from exc
    except DialFailed as exc:
        raise ApiError(503, "unavailable", str(exc)) from exc
    return web.json_response(
        {
            "call_id": dialed.call_id,
            "agent": dialed.agent,
            "number": dialed.number,
            "callback_of": dialed.callback_of,
        },
        status=202,
    )


async def agent_dial(request: web.Request) -> web.Response:
    agent = await bearer_agent(request, request.app[AGENT_DEPS])
    deps = _deps(request)
    body = await read_json(request, limit=4 * 1024)
    for key in body:
        if key not in _AGENT_FIELDS:
            raise invalid(key[:80], "unknown field; allowed: number, callback_of, agent")
    if "agent" in body and body["agent"] != agent.id:
        raise ApiError(403, "forbidden", "an agent dials only from its own device")
    return await _place(deps, agent, body, actor=agent.id)


async def admin_dial(request: web.Request, *, actor: str) -> web.Response:
    """POST /api/dial: the CRM asks the bridge to ring `agent`'s device and dial `number`."""
    deps = _deps(request)
    body = await read_json(request, limit=4 * 1024)
    for key in body:
        if key not in _AGENT_FIELDS:
            raise invalid(key[:80], "unknown field; allowed: agent, number, callback_of")
    agent_id = body.get("agent")
    if not isinstance(agent_id, str) or not 0 < len(agent_id) <= 64:
        raise invalid("agent", "required: the id of the agent whose device rings")
    agent = await get_agent(deps.pool, agent_id)
    if agent is None:
        raise ApiError(404, "not_found", f"no agent {agent_id[:64]!r}")
    return await _place(deps, agent, body, actor=actor)


async def agent_callbacks(request: web.Request) -> web.Response:
    agent = await bearer_agent(request, request.app[AGENT_DEPS])
    deps = _deps(request)
    queues = None if agent.role in ("supervisor", "admin") else deps.queues_of(bridge_device(agent))
    rows = await pending_callbacks(
        deps.pool,
        now=deps.now(),
        days=deps.callbacks_days,
        queues=queues,
        region=deps.regions.of_call,
    )
    return web.json_response({"callbacks": [row.as_json() for row in rows]})


def setup_dial_routes(app: web.Application, deps: DialDeps) -> web.Application:
    """Mount the agent's dial and callback routes (after `setup_agent_routes`, whose token
    check they use); the admin API mounts POST /api/dial itself through `admin_dial`."""
    app[DIAL_DEPS] = deps
    app.router.add_post("/agent/api/dial", agent_dial)
    app.router.add_get("/agent/api/callbacks", agent_callbacks)
    return app


async def admin_dial_route(request: web.Request) -> web.Response:
    """POST /api/dial, its actor the admin whose token the request carries."""
    return await admin_dial(request, actor=admin_actor(request))


def setup_admin_dial(api: web.Application) -> None:
    """Mount POST /dial on the admin API (`bridge.web.admin_api`); it answers 503 unless
    `setup_dial_routes` gave the root application its dial deps."""
    api.router.add_post("/dial", admin_dial_route)
