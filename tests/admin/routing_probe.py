"""Route calls through the real routing stack (H1's directory, rule store and route service)
with their NOTIFY-invalidated caches running, to see admin/webhook changes reach the next call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bridge.config import Config, build_config
from bridge.crm.directory import PostgresDirectory
from bridge.models import Decision, InboundCall
from bridge.routing.service import PostgresDecisionLog, RouteService
from bridge.routing.store import RuleStore


def inbound(caller: str, did: str = "100") -> InboundCall:
    return InboundCall(
        raw_caller=caller, caller=caller, caller_name="", did=did, at=datetime.now(UTC)
    )


class Router:
    def __init__(self, service: RouteService) -> None:
        self.service = service

    async def route(self, caller: str) -> Decision:
        return await self.service.route(inbound(caller))

    async def until(self, caller: str, queue: str, *, within_s: float = 10.0) -> Decision:
        """Route `caller` until the decision says `queue` (the NOTIFY is asynchronous)."""
        async with asyncio.timeout(within_s):
            while True:
                decision = await self.route(caller)
                if decision.queue == queue:
                    return decision
                await asyncio.sleep(0.02)


def probe_config() -> Config:
    # A generous budget: other test runs share the database server.
    return build_config({"agi": {"budget_ms": 5000}}, {}, runtime=False)


@asynccontextmanager
async def running_router(pool: asyncpg.Pool[Any]) -> AsyncIterator[Router]:
    directory = PostgresDirectory(pool)
    rules = RuleStore(pool)
    await directory.start()
    await rules.start()
    await directory.listener.wait_listening()
    await rules.listener.wait_listening()
    service = RouteService(
        directory, rules, probe_config(), decisions=PostgresDecisionLog(rules.pool)
    )
    try:
        yield Router(service)
    finally:
        await service.stop()
        await rules.stop()
        await directory.stop()
