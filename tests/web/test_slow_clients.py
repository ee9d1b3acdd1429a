"""Thousands of slow HTTP clients: the HTTP port stays within its cap, and `/healthz`,
FastAGI and the pops keep answering."""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
import asyncpg
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bridge.crm.roster import AgentRoster
from bridge.pops.hub import PopHub
from bridge.web import make_web_app
from bridge.web.server import HttpServer
from tests.agi.client import header, play_asterisk
from tests.agi.conftest import agi_config, start_stack, stop_stack
from tests.crm.fixture_crm import load_trace_crm
from tests.flood import close_sockets, flood_size, open_sockets, wait_until

SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow"  # never ends


async def nobody(_: str) -> None:
    return None


async def test_five_thousand_slow_clients_leave_healthz_fastagi_and_pops_answering(
    pool: asyncpg.Pool[Any], roster: AgentRoster, caplog: pytest.LogCaptureFixture
) -> None:
    cap = 1024
    count = flood_size(5000, server_fds=cap + 300)
    if count < 2 * cap:  # a low hard limit here: scale the cap, the logic is the same
        cap = max(8, count // 4)
    await load_trace_crm(pool)
    stack = await start_stack(pool, agi_config())
    hub = PopHub(sessions=roster, card_for_caller=nobody, port=0)
    await hub.start()
    http: HttpServer | None = None
    slow: list[Any] = []
    try:
        app = make_web_app(health=lambda: {"agi": stack.server.health(), "pops": hub.health()})
        # Long deadlines: the slow clients are all still there while the others are served.
        http = HttpServer(app, "127.0.0.1", 0, max_connections=cap, header_timeout_s=120)
        await http.start()
        guard = http.guard
        with caplog.at_level(logging.INFO):
            slow = await open_sockets(http.port, count, send=SLOW_HEAD)
            await wait_until(lambda: guard.seen == count)
            assert guard.open == cap and guard.pending == cap
            assert guard.refused == {"evicted": count - cap}

            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{http.url}/healthz") as response,
            ):
                assert response.status == 200
                body = await response.json()
            assert body["agi"] == "up" and body["pops"] == "up"

            routed = await play_asterisk(stack.port, header(), linkedid="5.1")
            assert routed.variables["BRIDGE_QUEUE"] == "senior"
            assert routed.variables["BRIDGE_DEGRADED"] == "0"

            async with connect(f"ws://127.0.0.1:{hub.port}") as ws:
                await ws.send(json.dumps({"type": "hello", "token": "not-a-token"}))
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001

            assert guard.open <= cap
    finally:
        close_sockets(slow)
        if http is not None:
            await http.stop()
        await hub.stop()
        await stop_stack(stack)
    guard_lines = [r for r in caplog.records if r.name.startswith("bridge.netguard")]
    assert 1 <= len(guard_lines) <= 3  # the episode, not thousands of connections
    assert f"stopped refusing connections: {count - cap + 1} in" in guard_lines[-1].getMessage()
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) <= 5


async def test_a_request_head_not_complete_in_time_is_cut_and_the_port_keeps_serving() -> None:
    app = make_web_app(health=lambda: {})
    http = HttpServer(app, "127.0.0.1", 0, max_connections=4, header_timeout_s=0.05)
    await http.start()
    slow = await open_sockets(http.port, 1, send=SLOW_HEAD)
    try:
        await wait_until(lambda: http.guard.refused["header_timeout"] == 1)
        assert http.guard.open == 0
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{http.url}/healthz") as response,
        ):
            assert response.status == 200
        assert http.health().detail["connections"]["refused"] == {"header_timeout": 1}
    finally:
        close_sockets(slow)
        await http.stop()
