"""A running /route stack for the AGI tests: real PostgreSQL, real loopback sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from bridge.agi import AgiServer, build_agi_server
from bridge.config import Config, build_config
from bridge.crm.directory import PostgresDirectory
from bridge.routing.service import PostgresDecisionLog, RouteService
from bridge.routing.store import RuleStore


def agi_config(**agi: Any) -> Config:
    """Loopback, port 0; a budget generous enough that a busy test machine does not degrade
    calls that should route normally (tests of the degraded path set their own)."""
    return build_config(
        {"agi": {"host": "127.0.0.1", "port": 0, "read_timeout_s": 4.0, "budget_ms": 3000, **agi}},
        {},
        runtime=False,
    )


@dataclass
class RouteStack:
    config: Config
    directory: PostgresDirectory
    rules: RuleStore
    service: RouteService
    server: AgiServer

    @property
    def port(self) -> int:
        return self.server.port


async def start_stack(pool: asyncpg.Pool[Any], config: Config, directory: Any = None) -> RouteStack:
    real_directory = PostgresDirectory(pool)
    rules = RuleStore(pool)
    await real_directory.start()
    await rules.start()
    await real_directory.listener.wait_listening()
    await rules.listener.wait_listening()
    service = RouteService(
        directory or real_directory, rules, config, decisions=PostgresDecisionLog(rules.pool)
    )
    server = build_agi_server(config, service)
    await server.start()
    return RouteStack(config, real_directory, rules, service, server)


async def stop_stack(stack: RouteStack) -> None:
    await stack.server.stop()
    await stack.service.stop()
    await stack.rules.stop()
    await stack.directory.stop()


@pytest.fixture
async def stack(pool: asyncpg.Pool[Any]) -> AsyncIterator[RouteStack]:
    s = await start_stack(pool, agi_config())
    try:
        yield s
    finally:
        await stop_stack(s)
