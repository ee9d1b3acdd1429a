"""Who may use the admin API under `/api/`: an active agent's bearer token, role `admin`.

Routes a feature opens to supervisors too (read-only, e.g. `GET /api/queues`) are named
with `allow_supervisors`. The check runs before anything else, 404s included, so an
unauthenticated client learns nothing about which routes exist. The token lookup is given
(`AdminAuth.authenticate`, the CRM's agents table in the bridge), so this module knows no
feature.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from bridge.plugin import Key
from bridge.web.errors import ApiError, Handler

__all__ = [
    "ADMIN_AUTH",
    "ADMIN_TOKENS",
    "AdminAuth",
    "Principal",
    "admin_actor",
    "allow_supervisors",
    "auth_middleware",
]


class Principal(Protocol):
    """The holder of a token, as the admin API needs it (the CRM's `Agent`)."""

    @property
    def id(self) -> str: ...

    @property
    def role(self) -> str: ...


Authenticate = Callable[[str], Awaitable[Principal | None]]


@dataclass
class AdminAuth:
    authenticate: Authenticate  # token -> its active holder, or None
    # (method, path) pairs supervisors may use too; every other route is admin only.
    supervisor_routes: set[tuple[str, str]] = field(default_factory=set)


ADMIN_AUTH = web.AppKey("bridge_admin_auth", AdminAuth)
_PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("bridge_admin_agent")


def allow_supervisors(api: web.Application, method: str, path: str) -> None:
    """Let supervisors use `method path` (the full path, e.g. "/api/queues") too."""
    api[ADMIN_AUTH].supervisor_routes.add((method, path))


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer token of an active admin, checked before anything else (also before 404s)."""
    auth = request.config_dict[ADMIN_AUTH]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="crm-bridge"'}
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <token>", headers=challenge)
    agent = await auth.authenticate(token.strip())
    if agent is None:
        raise ApiError(401, "unauthorized", "unknown or inactive token", headers=challenge)
    supervisor_ok = (request.method, request.path) in auth.supervisor_routes
    if agent.role != "admin" and not (supervisor_ok and agent.role == "supervisor"):
        wanted = "a supervisor or an admin" if supervisor_ok else "an admin"
        raise ApiError(403, "forbidden", f"agent {agent.id} is not {wanted}")
    request[_PRINCIPAL] = agent
    return await handler(request)


def admin_actor(request: web.Request) -> str:
    """The id of the agent whose token this request carries (the audit trail's actor)."""
    return request[_PRINCIPAL].id


# The token lookup of the admin API, provided by the plugin owning the agents (crm).
ADMIN_TOKENS: Key[Authenticate] = Key("admin_tokens")
