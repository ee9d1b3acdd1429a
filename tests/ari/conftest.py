"""Fixtures for ARI mode: a fake ARI server on loopback and a way to run the app against it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from bridge.ari.stasis import AriApp, Router
from bridge.config import Config, build_config
from bridge.models import Customer, Decision, InboundCall
from tests.ari.fake_ari import PASSWORD, USERNAME, FakeAri

ALICE = Customer("cust-alice", "Alice Chen", ("vip",))


def ari_config(url: str, *, budget_ms: int = 300, **ari: Any) -> Config:
    return build_config(
        {
            "ari": {"enabled": True, "url": url, "username": USERNAME, "password": PASSWORD, **ari},
            "ami": {"enabled": False},
            "agi": {"budget_ms": budget_ms},
        },
        environ={},
    )


class TableRouter:
    """Routes like the traces' CRM: +15551230001 is Alice (vip → senior), others support.

    `gate`, when given, holds every decision until it is set (a slow or hung CRM);
    `error`, when given, is raised instead of deciding (a broken CRM).
    """

    def __init__(self, *, gate: asyncio.Event | None = None, error: Exception | None = None):
        self.gate = gate
        self.error = error
        self.calls: list[InboundCall] = []
        self.entered = asyncio.Event()  # set once a decision has been asked for
        self.active = 0
        self.peak = 0  # most decisions in progress at once
        self.records: list[tuple[InboundCall, Decision, str | None]] = []

    async def route(self, call: InboundCall, deadline: float | None = None) -> Decision:
        self.calls.append(call)
        self.entered.set()
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if self.gate is not None:
                await self.gate.wait()
        finally:
            self.active -= 1
        if self.error is not None:
            raise self.error
        if call.caller == "+15551230001":
            return Decision("senior", 5, "vip", ALICE)
        return Decision("support", 0, "default", None)

    async def record(self, call: InboundCall, decision: Decision, recording: str | None) -> None:
        self.records.append((call, decision, recording))


@pytest.fixture
async def fake() -> AsyncIterator[FakeAri]:
    server = FakeAri()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


RunApp = Callable[..., AbstractAsyncContextManager[AriApp]]


@pytest.fixture
def run_app(fake: FakeAri) -> RunApp:
    """`async with run_app(router, budget_ms=..., **app_kwargs) as app:` — started, connected."""

    @asynccontextmanager
    async def run(
        router: Router,
        *,
        budget_ms: int = 300,
        connect: bool = True,
        config: Config | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AriApp]:
        kwargs.setdefault("backoff_initial_s", 0.05)
        app = AriApp(config or ari_config(fake.url, budget_ms=budget_ms), router, **kwargs)
        lists = fake.lists()
        await app.start()
        try:
            if connect:
                async with asyncio.timeout(10):
                    await app.wait_connected()
                await fake.wait_for(lambda: fake.lists() > lists)  # the first resync asked
            yield app
        finally:
            await app.stop()

    return run
