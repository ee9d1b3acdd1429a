"""`GET /healthz` and `GET /metrics`.

/healthz answers `{"status": "ok"|"degraded"|"down", "components": {name: {"state", "required",
"detail"}}, name: state, ...}`: each component's state also sits at the top level so a check
can read `body["ami"]`. With several instances on one database (bridge/cluster) the body
also has `instance`: {"id", "role": "leader"|"standby", "peers": [...]}. The status code is
503 when a required component is `down` (or the health source itself fails), else 200; a
`degraded`, `standby` or optional component never makes it 503.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from bridge.component import Health

log = logging.getLogger(__name__)

HealthSource = Callable[[], Mapping[str, Health]]
HEALTH_SOURCE: web.AppKey[HealthSource] = web.AppKey("health_source")
# Optional: who this instance is among several on one database (bridge/cluster), shown as
# the body's `instance` ({id, role, peers}).
InstanceSource = Callable[[], Mapping[str, Any] | None]
INSTANCE_SOURCE: web.AppKey[InstanceSource] = web.AppKey("instance_source")
METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)


def health_body(states: Mapping[str, Health]) -> tuple[int, dict[str, Any]]:
    """The status code and JSON body for these component states (pure)."""
    components: dict[str, Any] = {}
    required_down = False
    any_bad = False
    for name, health in sorted(states.items()):
        components[name] = {
            "state": health.state,
            "required": health.required,
            "detail": _jsonable(health.detail),
        }
        if health.state in ("down", "degraded", "starting"):
            any_bad = True
        if health.required and health.state == "down":
            required_down = True
    status = "down" if required_down else ("degraded" if any_bad else "ok")
    body: dict[str, Any] = {name: c["state"] for name, c in components.items()}
    body["status"] = status
    body["components"] = components
    return (503 if required_down else 200), body


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


async def handle_healthz(request: web.Request) -> web.Response:
    try:
        states = dict(request.app[HEALTH_SOURCE]())
    except Exception as exc:  # a broken health source must still answer, and say so
        log.exception("health source failed")
        return web.json_response(
            {"status": "down", "components": {}, "error": type(exc).__name__}, status=503
        )
    status, body = health_body(states)
    instance = request.app.get(INSTANCE_SOURCE)
    if instance is not None and (info := instance()) is not None:
        body["instance"] = _jsonable(info)
    return web.json_response(body, status=status)


async def handle_metrics(request: web.Request) -> web.Response:
    data = generate_latest(request.app[METRICS_REGISTRY])
    response = web.Response(body=data)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
