"""The admin API's frame under `/api/`: a sub-application every feature adds its routes to.

    api = make_admin_api(AdminAuth(authenticate))
    setup_rules_api(api, pool)          # each feature: api.router.add_get("/rules", ...)
    app.add_subapp("/api/", api)

Its middlewares, in order: JSON errors, admin authentication (bridge/web/auth.py), then the
database adapter boundary (a lost connection is 503, a constraint race 409). Bodies are at
most 64 KiB; `GET /api/openapi.json` describes the whole API (bridge/web/openapi.py).
"""

from __future__ import annotations

import asyncpg
from aiohttp import web

from bridge.db.errors import DB_OUTAGE
from bridge.errors import CrmUnavailable
from bridge.web.auth import ADMIN_AUTH, AdminAuth, auth_middleware
from bridge.web.errors import ApiError, Handler, error_middleware
from bridge.web.openapi import openapi_document

__all__ = ["BODY_LIMIT", "make_admin_api"]

BODY_LIMIT = 64 * 1024


@web.middleware
async def db_errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The database adapter boundary: a lost connection is 503, not a stack trace."""
    try:
        return await handler(request)
    except DB_OUTAGE as exc:
        raise CrmUnavailable(str(exc)) from exc
    except asyncpg.IntegrityConstraintViolationError as exc:  # a race the checks did not see
        raise ApiError(409, "conflict", exc.detail or exc.message) from exc


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


def make_admin_api(auth: AdminAuth) -> web.Application:
    """The `/api/` sub-application, with `GET /openapi.json`; mount it after adding routes."""
    api = web.Application(
        middlewares=[error_middleware, auth_middleware, db_errors_middleware],
        client_max_size=BODY_LIMIT,
    )
    api[ADMIN_AUTH] = auth
    api.router.add_get("/openapi.json", get_openapi)
    return api
