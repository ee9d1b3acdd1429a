"""The aiohttp application on the `[http]` port, and how features add routes to it.

`make_web_app(health=..., setups=[...])` builds the root application with the JSON error
middleware and the security headers every response carries, mounts `GET /healthz` and
`GET /metrics`, then calls each `setup(app)` so a feature adds its own routes:

    app = make_web_app(
        health=components_health,
        setups=[
            lambda app: setup_agent_routes(app, AgentDeps(pool=pool, pops_port=hub.port)),
            lambda app: setup_webhook_routes(app, WebhookDeps(pool=pool, config=config)),
        ],
    )

A setup function may also be called on the returned app before it is started (aiohttp
freezes the router when the runner sets it up).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry

from bridge.component import Health
from bridge.web.errors import Handler, error_middleware
from bridge.web.health import HEALTH_SOURCE, METRICS_REGISTRY, handle_healthz, handle_metrics

__all__ = ["SECURITY_HEADERS", "Setup", "make_web_app", "security_headers"]

Setup = Callable[[web.Application], object]

# script-src 'self': no inline script, no eval; the agent page loads /agent/static/agent.js.
# connect-src allows websockets to any host because the pop hub listens on another port.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Add the security headers to every response, errors included."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        for name, value in SECURITY_HEADERS.items():
            exc.headers.setdefault(name, value)
        raise
    if not response.prepared:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


def make_web_app(
    *,
    health: Callable[[], Mapping[str, Health]] | None = None,
    registry: CollectorRegistry = REGISTRY,
    setups: Iterable[Setup] = (),
    client_max_size: int = 1024 * 1024,
) -> web.Application:
    """The root application: /healthz, /metrics, then every `setup(app)` in order."""
    app = web.Application(
        middlewares=[security_headers, error_middleware], client_max_size=client_max_size
    )
    app[HEALTH_SOURCE] = health or dict
    app[METRICS_REGISTRY] = registry
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/metrics", handle_metrics)
    for setup in setups:
        setup(app)
    return app
