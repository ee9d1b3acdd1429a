"""Routing the traces' callers through the real store, directory and service."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from bridge.config import build_config
from bridge.crm.directory import PostgresDirectory
from bridge.models import InboundCall
from bridge.routing.service import PostgresDecisionLog, RouteService
from bridge.routing.store import RuleStore
from tests.crm.fixture_crm import ALICE, BOB, ZHANG, load_trace_crm


def _call(caller: str | None, uniqueid: str = "") -> InboundCall:
    return InboundCall(
        raw_caller=caller or "anonymous",
        caller=caller,
        caller_name="",
        did="18005550100",
        at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        channel="Local/18005550100@inbound-00000001;2",
        uniqueid=uniqueid,
        linkedid=uniqueid,
    )


async def test_trace_callers_route_as_recorded(pool: asyncpg.Pool[Any]) -> None:
    tokens = await load_trace_crm(pool)
    assert set(tokens) == {"1001", "1002", "2001", "2002"}
    config = build_config({}, {}, runtime=False)
    directory = PostgresDirectory(pool)
    rules = RuleStore(pool)
    await directory.start()
    await rules.start()
    service = RouteService(directory, rules, config, decisions=PostgresDecisionLog(rules.pool))
    try:
        expected = {
            "+15551230001": ("senior", "vip", ALICE),
            "+15551230002": ("support", "default", BOB),
            "+8613800138000": ("senior", "vip", ZHANG),
            "+15551239999": ("support", "default", None),
            None: ("support", "default", None),
        }
        for caller, (queue, rule, customer_id) in expected.items():
            decision = await service.route(_call(caller))
            assert (decision.queue, decision.rule) == (queue, rule), caller
            assert (decision.customer.id if decision.customer else None) == customer_id
            assert not decision.degraded
        decision = await service.route(_call("+15551230001", "1700000000.1"))
        await service.record(_call("+15551230001", "1700000000.1"), decision, "x.wav")
        assert await service.drain(5)
        row = await pool.fetchrow("SELECT * FROM route_decisions")
        assert row is not None
        assert row["customer_id"] == ALICE and row["queue"] == "senior"
        assert row["recording"] == "x.wav" and row["linkedid"] == "1700000000.1"
    finally:
        await service.stop()
        await rules.stop()
        await directory.stop()
