"""The HTTP plugin: the `[http]` server (component `http`) with /healthz, /metrics, the
admin API under /api/ and every plugin's routes, mounted in plugin order."""

from __future__ import annotations

from bridge.plugin import Context, Http, Plugin
from bridge.web.admin_api import make_admin_api
from bridge.web.auth import ADMIN_TOKENS, AdminAuth
from bridge.web.factory import make_web_app
from bridge.web.server import HttpServer

__all__ = ["HTTP"]


def _server(ctx: Context) -> HttpServer:
    app = make_web_app(health=ctx.health)
    api = make_admin_api(AdminAuth(ctx.need(ADMIN_TOKENS)))
    http = Http(app, api)
    for plugin in ctx.plugins:
        if plugin.routes is not None:
            plugin.routes(http, ctx)
    app.add_subapp("/api/", api)
    cfg = ctx.config.http
    return HttpServer(
        app,
        cfg.host,
        cfg.port,
        max_connections=cfg.max_connections,
        header_timeout_s=cfg.header_timeout_s,
    )


HTTP = Plugin("http", build=_server)
