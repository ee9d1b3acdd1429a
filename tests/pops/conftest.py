"""A real pop hub on loopback over the test database with the traces' CRM loaded."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from websockets.asyncio.client import ClientConnection, connect

from bridge.ami.decode import decode_event
from bridge.ami.protocol import AmiParser
from bridge.ami_replay import ReplayClock, replay
from bridge.config import build_config
from bridge.crm.directory import PostgresDirectory
from bridge.crm.roster import AgentRoster
from bridge.models import CallEvent
from bridge.pops.hub import PopHub
from bridge.pops.sources import build_pop_hub
from bridge.tracker.tracker import CallTracker
from tests.conftest import TRACES, running_roster
from tests.crm.fixture_crm import load_trace_crm

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
    tracker: CallTracker
    roster: AgentRoster

    def player(self, name: str) -> Player:
        return Player(self, name)

    def play(self, name: str) -> list[CallEvent]:
        """Play a whole recorded trace through the hub's tracker to the hub."""
        return self.player(name).rest()


class Player:
    """Feeds a recorded trace to the hub's tracker frame by frame, dispatching each batch to
    the hub as the AMI link does."""

    def __init__(self, env: HubEnv, name: str) -> None:
        self.env = env
        self.clock = ReplayClock()
        self.frames = iter(AmiParser().feed((TRACES / name / "ami.log").read_bytes()))
        self.emitted: list[CallEvent] = []

    def until(self, count: int) -> list[CallEvent]:
        """Play on until `count` call events in all were emitted; the new ones."""
        start = len(self.emitted)
        while len(self.emitted) < count:
            frame = next(self.frames, None)
            if frame is None:
                break
            self._feed(frame)
        return self.emitted[start:]

    def rest(self) -> list[CallEvent]:
        start = len(self.emitted)
        for frame in self.frames:
            self._feed(frame)
        batch = self.env.tracker.flush()
        self.env.hub.dispatch(batch)
        self.emitted.extend(batch)
        return self.emitted[start:]

    def _feed(self, frame: Any) -> None:
        event = decode_event(frame, self.clock())
        if event is not None:
            batch = self.env.tracker.feed(event)
            self.env.hub.dispatch(batch)
            self.emitted.extend(batch)


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
    stack = contextlib.AsyncExitStack()  # hubs and their rosters, stopped in reverse
    clients: list[ClientConnection] = []

    async def make(**options: Any) -> HubEnv:
        directory = PostgresDirectory(pool)
        roster = await stack.enter_async_context(running_roster(pool))
        # roster_agents: the tracker takes only the roster's devices for agents (as the AMI
        # plugin does).
        is_agent = (
            (lambda ext: roster.agent_id_of(ext) is not None)
            if options.pop("roster_agents", False)
            else None
        )
        tracker = CallTracker(CONFIG.device_regex, is_agent=is_agent)
        options.setdefault("origins", ["http://agents.example:8080"])
        config = options.pop("config", CONFIG)
        hub = build_pop_hub(pool, config, directory, roster, live=tracker, **options)
        await hub.start()
        stack.push_async_callback(hub.stop)
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

        return HubEnv(pool, hub, tokens, open_client, url, tracker, roster)

    yield make
    for ws in clients:
        await ws.close()
    await stack.aclose()
