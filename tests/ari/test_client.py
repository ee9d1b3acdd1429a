"""The ARI adapter maps every HTTP and socket failure to the project's errors."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bridge.ari.client import AriClient, events_url
from bridge.config import AriConfig
from bridge.errors import AriProtocolError, AuthError, LinkDown, NotFound
from tests.ari.fake_ari import PASSWORD, USERNAME, FakeAri, channel_json


def config(url: str, **kwargs: str) -> AriConfig:
    values = {"enabled": True, "url": url, "username": USERNAME, "password": PASSWORD, **kwargs}
    return AriConfig(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("base", "app", "expected"),
    [
        (
            "http://127.0.0.1:8088/ari",
            "crm-bridge",
            "ws://127.0.0.1:8088/ari/events?app=crm-bridge&subscribeAll=false",
        ),
        (
            "https://pbx.example/ari/",
            "a.b",
            "wss://pbx.example/ari/events?app=a.b&subscribeAll=false",
        ),
        ("http://[::1]:8088/ari", "x", "ws://[::1]:8088/ari/events?app=x&subscribeAll=false"),
    ],
)
def test_events_url(base: str, app: str, expected: str) -> None:
    assert events_url(base, app) == expected


def test_credentials_in_the_configured_url_never_reach_the_events_url() -> None:
    client = AriClient(config("http://user:secret@127.0.0.1:8088/ari"))
    assert "secret" not in client.events_url
    assert "secret" not in repr(client)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAri]:
    server = FakeAri()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def client(fake: FakeAri) -> AsyncIterator[AriClient]:
    c = AriClient(config(fake.url), rest_timeout_s=2)
    await c.open()
    try:
        yield c
    finally:
        await c.close()


async def test_rest_calls_reach_the_channel(fake: FakeAri, client: AriClient) -> None:
    fake.park(channel_json("1.1"), linkedid="1.0")
    assert await client.get_variable("1.1", "CHANNEL(linkedid)") == "1.0"
    await client.set_variable("1.1", "BRIDGE_QUEUE", "senior & co=1?x")
    await client.continue_in_dialplan("1.1")
    assert [c.line for c in fake.calls] == [
        "GET /channels/1.1/variable CHANNEL(linkedid)",
        "POST /channels/1.1/variable BRIDGE_QUEUE=senior & co=1?x",
        "POST /channels/1.1/continue",
    ]
    assert await client.list_channels() == []


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, NotFound),
        (409, NotFound),
        (401, AuthError),
        (403, AuthError),
        (400, AriProtocolError),
        (422, AriProtocolError),
        (500, LinkDown),
        (503, LinkDown),
    ],
)
async def test_http_statuses_map_to_bridge_errors(
    fake: FakeAri, client: AriClient, status: int, error: type[Exception]
) -> None:
    fake.park(channel_json("1.1"))
    fake.failures[("continue", "1.1")] = [status]
    with pytest.raises(error) as caught:
        await client.continue_in_dialplan("1.1")
    assert PASSWORD not in str(caught.value)


async def test_wrong_credentials_are_an_auth_error_naming_the_user(fake: FakeAri) -> None:
    c = AriClient(config(fake.url, password="nope-Secret"))
    await c.open()
    try:
        with pytest.raises(AuthError, match=USERNAME) as caught:
            await c.list_channels()
        assert "nope-Secret" not in str(caught.value)
        with pytest.raises(AuthError):
            async with c.event_stream():
                pass  # pragma: no cover
    finally:
        await c.close()


async def test_refused_upgrade_is_link_down(fake: FakeAri, client: AriClient) -> None:
    fake.refuse_websocket = 503
    with pytest.raises(LinkDown, match="503"):
        async with client.event_stream():
            pass  # pragma: no cover


async def test_closed_websocket_is_link_down(fake: FakeAri, client: AriClient) -> None:
    async with client.event_stream() as stream:
        await fake.wait_connected()
        await fake.send('{"type": "Ping"}')
        assert await stream.receive() == '{"type": "Ping"}'
        await fake.cut()
        with pytest.raises(LinkDown):
            await stream.receive()


async def test_nobody_listening_is_link_down() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = AriClient(config(f"http://127.0.0.1:{port}/ari"), rest_timeout_s=2, open_timeout_s=2)
    await c.open()
    try:
        with pytest.raises(LinkDown):
            await c.list_channels()
        with pytest.raises(LinkDown):
            async with c.event_stream():
                pass  # pragma: no cover
    finally:
        await c.close()


async def test_unopened_client_is_link_down() -> None:
    with pytest.raises(LinkDown):
        await AriClient(config("http://127.0.0.1:9/ari")).continue_in_dialplan("1.1")


@pytest.fixture
async def odd_server() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A server that answers channels with HTML and never answers `continue`."""
    release = asyncio.Event()

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>bad gateway</html>", content_type="text/html")

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/ari/channels", html)
    app.router.add_get("/ari/channels/{id}/variable", html)
    app.router.add_post("/ari/channels/{id}/continue", hang)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/ari", release
    finally:
        release.set()
        await runner.cleanup()


async def test_unexpected_bodies_and_silence_are_mapped(
    odd_server: tuple[str, asyncio.Event],
) -> None:
    url, _ = odd_server
    c = AriClient(config(url), rest_timeout_s=0.3)
    await c.open()
    try:
        with pytest.raises(AriProtocolError):
            await c.list_channels()
        with pytest.raises(AriProtocolError):
            await c.get_variable("1.1", "CHANNEL(linkedid)")
        async with asyncio.timeout(10):
            with pytest.raises(LinkDown):
                await c.continue_in_dialplan("1.1")
    finally:
        await c.close()


async def test_hostile_channel_ids_stay_inside_their_path_segment(
    fake: FakeAri, client: AriClient
) -> None:
    for channel_id in ("a/b", "../../channels", "x?variable=y", "id#frag", "sp ace", "%2F", "é"):
        fake.park(channel_json(channel_id))
        await client.continue_in_dialplan(channel_id)
    assert fake.continued() == [
        "a/b",
        "../../channels",
        "x?variable=y",
        "id#frag",
        "sp ace",
        "%2F",
        "é",
    ]
