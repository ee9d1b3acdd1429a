"""A real pop hub on loopback over the test database with the traces' CRM loaded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from websockets.asyncio.client import ClientConnection, connect

from bridge.config import build_config
from bridge.crm.directory import PostgresDirectory
from bridge.models import CallEvent
from bridge.pops.hub import PopHub
from bridge.pops.sources import build_pop_hub
from bridge.tracker.replay import replay
from bridge.tracker.tracker import CallTracker
from tests.crm.fixture_crm import load_trace_crm

TRACES = Path(__file__).parents[1] / "fixtures" / "asterisk-traces"
CONFIG = build_config({"pops": {"port": 0}, "http": {"port": 0}}, {}, runtime=False)


def trace_events(name: str) -> list[CallEvent]:
    """The call events of a recorded trace, replayed byte for byte through the tracker."""
    tracker = CallTracker(CONFIG.device_regex)
    return replay((TRACES / name / "ami.log").read_bytes(), tracker)


@dataclass
class HubEnv:
    pool: asyncpg.Pool[Any]
    hub: PopHub
    tokens: dict[str, str]
    connect: Callable[..., Awaitable[ClientConnection]]
    url: str


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(5):
        data = await ws.recv()
    value = json.loads(data)
    assert isinstance(value, dict)
    return value


async def recv_until_pong(ws: ClientConnection) -> list[dict[str, Any]]:
    """Everything queued for this client before a ping we send now."""
    await ws.send(json.dumps({"type": "ping"}))
    out = []
    while True:
        msg = await recv_json(ws)
        if msg["type"] == "pong":
            return out
        out.append(msg)


@pytest.fixture
async def make_hub(pool: asyncpg.Pool[Any]) -> AsyncIterator[Callable[..., Awaitable[HubEnv]]]:
    tokens = await load_trace_crm(pool)
    hubs: list[PopHub] = []
    clients: list[ClientConnection] = []

    async def make(**options: Any) -> HubEnv:
        directory = PostgresDirectory(pool)
        options.setdefault("origins", ["http://agents.example:8080"])
        hub = build_pop_hub(pool, CONFIG, directory, **options)
        await hub.start()
        hubs.append(hub)
        url = f"ws://127.0.0.1:{hub.port}"

        async def open_client(agent: str | None = None, **kwargs: Any) -> ClientConnection:
            ws = await connect(url, **kwargs)
            clients.append(ws)
            if agent is not None:
                await ws.send(json.dumps({"type": "hello", "token": tokens[agent]}))
                welcome = await recv_json(ws)
                assert welcome == {"type": "welcome", "agent": agent}
                await hub.wait_until(lambda: any(c for c in hub._clients.get(agent, ())))
            return ws

        return HubEnv(pool, hub, tokens, open_client, url)

    yield make
    for ws in clients:
        await ws.close()
    for hub in hubs:
        await hub.stop()
