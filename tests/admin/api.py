"""The admin API under /api/ as the plugins mount it, for tests that need only it (no hub,
no AMI link): the rules, calls, queues, agents, customers and audit routes of their
features' plugins, and POST /api/dial (503 unless the test sets up the dial routes)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from bridge.config import Config
from bridge.crm.plugin import CRM_API
from bridge.dial.routes import setup_admin_dial
from bridge.plugin import Context, Http
from bridge.records.plugin import RECORDS
from bridge.routing.plugin import RULES
from bridge.wallboard.board import WallBoard
from bridge.wallboard.plugin import WALL_BOARD, WALLBOARD
from bridge.web.admin_api import make_admin_api
from bridge.web.auth import ADMIN_TOKENS, AdminAuth


def mount_admin_api(
    app: web.Application, pool: asyncpg.Pool[Any], config: Config, board: WallBoard | None = None
) -> web.Application:
    ctx = Context(config, pool)
    assert CRM_API.prepare is not None
    CRM_API.prepare(ctx)
    if board is not None:
        ctx.provide(WALL_BOARD, board)
    api = make_admin_api(AdminAuth(ctx.need(ADMIN_TOKENS)))
    http = Http(app, api)
    for plugin in (RULES, RECORDS, WALLBOARD, CRM_API):
        assert plugin.routes is not None
        plugin.routes(http, ctx)
    setup_admin_dial(api)
    app.add_subapp("/api/", api)
    return api
