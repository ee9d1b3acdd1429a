"""Routing metrics are exported under crm_bridge_route_* and move with the traffic."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
from prometheus_client import REGISTRY, generate_latest

from bridge.config import build_config
from bridge.crm.directory import PostgresDirectory
from bridge.models import Customer, InboundCall
from bridge.routing.service import PostgresDecisionLog, RouteService
from bridge.routing.store import RuleStore
from tests.crm.fixture_crm import load_trace_crm


def value(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def call(caller: str) -> InboundCall:
    return InboundCall(caller, caller, "", "1800", datetime(2026, 11, 23, tzinfo=UTC))


class Hanging:
    def __init__(self) -> None:
        self.cancelled = asyncio.Event()
        self.started = asyncio.Event()

    async def lookup(self, e164: str) -> Customer | None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return None


async def test_route_metrics(pool: asyncpg.Pool[Any]) -> None:
    await load_trace_crm(pool)
    directory, rules = PostgresDirectory(pool), RuleStore(pool)
    await directory.start()
    await rules.start()
    config = build_config({"agi": {"budget_ms": 50}}, {}, runtime=False)
    service = RouteService(directory, rules, config, decisions=PostgresDecisionLog(rules.pool))
    before = {
        "vip": value("crm_bridge_route_decisions_total", {"rule": "vip"}),
        "hit": value("crm_bridge_route_cache_total", {"result": "hit"}),
        "miss": value("crm_bridge_route_cache_total", {"result": "miss"}),
        "lookups": value("crm_bridge_route_lookup_seconds_count"),
        "degraded": value("crm_bridge_route_degraded_total"),
    }
    try:
        await service.route(call("+15551230001"))
        await service.route(call("+15551230001"))
        assert value("crm_bridge_route_decisions_total", {"rule": "vip"}) == before["vip"] + 2
        assert value("crm_bridge_route_cache_total", {"result": "miss"}) == before["miss"] + 1
        assert value("crm_bridge_route_cache_total", {"result": "hit"}) == before["hit"] + 1
        assert value("crm_bridge_route_lookup_seconds_count") == before["lookups"] + 2
        slow = RouteService(Hanging(), rules, config, decisions=PostgresDecisionLog(rules.pool))
        await slow.route(call("+15551230001"))
        await slow.stop()
        assert value("crm_bridge_route_degraded_total") == before["degraded"] + 1
        text = generate_latest().decode()
        assert "crm_bridge_route_lookup_seconds_bucket" in text
    finally:
        await service.stop()
        await rules.stop()
        await directory.stop()


async def test_caller_giving_up_cancels_the_lookup(pool: asyncpg.Pool[Any]) -> None:
    rules = RuleStore(pool)
    config = build_config({"agi": {"budget_ms": 10_000}}, {}, runtime=False)
    hanging = Hanging()
    service = RouteService(hanging, rules, config, decisions=PostgresDecisionLog(rules.pool))
    task = asyncio.create_task(service.route(call("+15551230001")))
    async with asyncio.timeout(5):
        await hanging.started.wait()
    task.cancel()
    async with asyncio.timeout(5):
        await asyncio.wait({task})
        await hanging.cancelled.wait()
    assert task.cancelled()
    await service.stop()
