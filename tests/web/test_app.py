from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from bridge.component import Health
from bridge.web import HttpServer, make_web_app


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[web.Application], object]]:
    servers: list[HttpServer] = []

    async def start(app: web.Application) -> HttpServer:
        server = HttpServer(app, "127.0.0.1", 0)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


async def get(url: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def test_healthz_is_200_with_each_component_state(serve) -> None:
    states: Mapping[str, Health] = {
        "ami": Health("up"),
        "database": Health("up"),
        "ari": Health("disabled", required=False),
    }
    server = await serve(make_web_app(health=lambda: states))
    status, _, body = await get(server.url + "/healthz")
    assert status == 200
    data = __import__("json").loads(body)
    assert data["ami"] == "up" and data["ari"] == "disabled" and data["status"] == "ok"
    assert data["components"]["database"]["required"] is True


async def test_healthz_is_503_when_a_required_component_is_down(serve) -> None:
    states = {"ami": Health("down", detail={"error": "refused"}), "pops": Health("up")}
    server = await serve(make_web_app(health=lambda: states))
    status, _, body = await get(server.url + "/healthz")
    assert status == 503
    assert b'"ami": "down"' in body


async def test_an_optional_component_down_keeps_healthz_200(serve) -> None:
    states = {"ari": Health("down", required=False), "ami": Health("degraded")}
    server = await serve(make_web_app(health=lambda: states))
    status, _, _ = await get(server.url + "/healthz")
    assert status == 200


async def test_a_failing_health_source_answers_503_not_a_crash(serve) -> None:
    def broken() -> Mapping[str, Health]:
        raise RuntimeError("boom")

    server = await serve(make_web_app(health=broken))
    status, _, body = await get(server.url + "/healthz")
    assert status == 503 and b"RuntimeError" in body


async def test_metrics_are_prometheus_text(serve) -> None:
    registry = CollectorRegistry()
    Counter("crm_bridge_test_things", "things", registry=registry).inc(3)
    server = await serve(make_web_app(registry=registry))
    status, headers, body = await get(server.url + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert b"crm_bridge_test_things_total 3.0" in body


async def test_setups_add_routes_and_every_response_has_security_headers(serve) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi")

    def setup(app: web.Application) -> None:
        app.router.add_get("/hello", hello)

    server = await serve(make_web_app(setups=[setup]))
    status, headers, body = await get(server.url + "/hello")
    assert (status, body) == (200, b"hi")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, body = await get(server.url + "/no/such/route")
    assert status == 404 and b'"not_found"' in body
    assert headers["X-Content-Type-Options"] == "nosniff"


async def test_server_reports_its_ephemeral_port_and_health() -> None:
    server = HttpServer(make_web_app(), "127.0.0.1", 0)
    assert server.health().state == "down"
    await server.start()
    try:
        assert server.port > 0
        assert server.health().state == "up"
    finally:
        await server.stop()
    assert server.health().state == "down"
