"""The outbox delivers every record to the CRM once, retries, dead-letters and alerts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from bridge.alerts import Alerter
from bridge.config import build_config
from bridge.connectors import BuiltinConnector, RestConnector
from bridge.errors import CrmUnavailable
from bridge.records import RecordWriter
from bridge.records.outbox import OutboxWorker
from tests.alerts.receivers import WebhookReceiver
from tests.connectors.crm_server import FIELD_MAP, TOKEN, CrmServer
from tests.records.factory import make_ended


@pytest.fixture
async def crm() -> AsyncIterator[CrmServer]:
    server = CrmServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def hook() -> AsyncIterator[WebhookReceiver]:
    r = WebhookReceiver()
    await r.start()
    try:
        yield r
    finally:
        await r.close()


def rest(crm: CrmServer) -> RestConnector:
    config = build_config(
        {
            "crm": {
                "connector": "rest",
                "lookup_url": f"{crm.url}/customers?phone={{phone}}",
                "records_url": f"{crm.url}/calls/{{call_id}}",
                "auth_header": f"Authorization: {TOKEN}",
                "field_map": FIELD_MAP,
                "timeout_ms": 1000,
            }
        },
        {},
        runtime=False,
    )
    return RestConnector(config.crm, retries=0)


class Outcomes:
    """Collects outbox outcomes and lets a test await a given one."""

    def __init__(self, worker: OutboxWorker) -> None:
        self.seen: list[tuple[str, str]] = []
        self._changed = asyncio.Event()
        worker.on_outcome(self._on)

    def _on(self, call_id: str, outcome: str, lag: float) -> None:
        self.seen.append((call_id, outcome))
        self._changed.set()

    async def wait_for(self, call_id: str, outcome: str, count: int = 1) -> None:
        async with asyncio.timeout(10):
            while self.seen.count((call_id, outcome)) < count:
                self._changed.clear()
                await self._changed.wait()


async def test_builtin_connector_marks_records_delivered(
    pool: asyncpg.Pool[Any], writer: RecordWriter
) -> None:
    connector = BuiltinConnector()
    worker = OutboxWorker(pool, connector)
    for i in range(5):
        await writer.submit(make_ended(f"1.{i}"))
    await writer.wait_idle()
    await worker.drain()
    assert connector.posted == 5
    assert await pool.fetchval("SELECT count(*) FROM call_outbox WHERE state = 'delivered'") == 5
    assert worker._stats.backlog == 0


async def test_rest_crm_failing_first_posts_gets_each_record_once(
    pool: asyncpg.Pool[Any], writer: RecordWriter, crm: CrmServer
) -> None:
    crm.fail_first = 3
    connector = rest(crm)
    await connector.start()
    worker = OutboxWorker(pool, connector, max_attempts=5, backoff_s=0.01, poll_s=0.02)
    outcomes = Outcomes(worker)
    writer.on_committed(lambda kind, key, at: worker.wake())
    await worker.start()
    try:
        await writer.submit(make_ended("1795464246.0", caller="+15551230001"))
        await outcomes.wait_for("1795464246.0", "delivered")
        health = worker.health()
    finally:
        await worker.stop()
        await connector.stop()
    assert outcomes.seen.count(("1795464246.0", "retry")) == 3
    assert crm.accepted == {"1795464246.0": 1}
    sent = crm.records["1795464246.0"]
    assert sent["callRef"] == "1795464246.0" and sent["caller"] == "+15551230001"
    assert sent["outcome"] == "answered" and sent["agents"][0]["agent"] == "1001"
    row = await pool.fetchrow("SELECT state, attempts, delivered_at FROM call_outbox")
    assert row["state"] == "delivered" and row["attempts"] == 3
    assert health.detail["dead_letters"] == 0


async def test_record_is_dead_lettered_after_max_attempts_and_alerted(
    pool: asyncpg.Pool[Any], writer: RecordWriter, crm: CrmServer, hook: WebhookReceiver
) -> None:
    crm.always_fail = True
    connector = rest(crm)
    await connector.start()
    alerter = Alerter(build_config({"alerts": {"webhook_url": hook.url}}, {}, runtime=False).alerts)
    await alerter.start()
    worker = OutboxWorker(
        pool, connector, max_attempts=3, backoff_s=0.01, poll_s=0.02, alerts=alerter
    )
    outcomes = Outcomes(worker)
    await worker.start()
    try:
        await writer.submit(make_ended("9.9", start=datetime.now(UTC) - timedelta(seconds=35)))
        await writer.wait_idle()
        worker.wake()
        await outcomes.wait_for("9.9", "dead")
        await worker.refresh_stats()
        health = worker.health()
        await alerter.drain()
    finally:
        await worker.stop()
        await connector.stop()
        await alerter.stop()
    assert crm.posts == 3 and not crm.accepted
    dead = await pool.fetchrow("SELECT * FROM call_dead_letters")
    assert dead["call_id"] == "9.9" and dead["attempts"] == 3
    assert "503" in dead["last_error"] and dead["record"]["call_id"] == "9.9"
    assert await pool.fetchval("SELECT state FROM call_outbox") == "dead"
    assert health.detail["dead_letters"] == 1
    assert [a["kind"] for a in hook.received] == ["dead_letter"]  # ended just now: no lag alert
    assert hook.received[0]["details"]["call_id"] == "9.9"


async def test_disposition_reaches_the_external_crm(
    pool: asyncpg.Pool[Any], writer: RecordWriter, crm: CrmServer
) -> None:
    connector = rest(crm)
    await connector.start()
    worker = OutboxWorker(pool, connector)
    try:
        await writer.submit(make_ended("5.5"))
        await writer.wait_idle()
        await worker.drain()
        assert crm.records["5.5"]["disposition"] is None
        await pool.execute(
            "UPDATE call_records SET disposition = 'resolved', notes = 'fixed <b>it</b>'"
            " WHERE call_id = '5.5'"
        )
        await worker.drain()
    finally:
        await connector.stop()
    assert crm.records["5.5"]["disposition"] == "resolved"
    assert crm.records["5.5"]["notes"] == "fixed <b>it</b>"
    assert crm.accepted == {"5.5": 1}  # same idempotency key: updated, not duplicated


async def test_sync_lag_past_the_threshold_alerts(
    pool: asyncpg.Pool[Any], writer: RecordWriter, crm: CrmServer, hook: WebhookReceiver
) -> None:
    crm.always_fail = True
    connector = rest(crm)
    await connector.start()
    alerter = Alerter(build_config({"alerts": {"webhook_url": hook.url}}, {}, runtime=False).alerts)
    await alerter.start()
    worker = OutboxWorker(pool, connector, alerts=alerter, lag_threshold_s=5.0, backoff_s=60)
    try:
        old = datetime.now(UTC) - timedelta(minutes=10)
        await writer.submit(make_ended("3.3", start=old))
        await writer.wait_idle()
        await worker.drain()
        stats = await worker.refresh_stats()
        await alerter.drain()
    finally:
        await connector.stop()
        await alerter.stop()
    assert stats.backlog == 1 and stats.oldest_lag_s > 500
    assert worker.health().state == "down"  # not started; the numbers are still right
    assert hook.received[0]["kind"] == "sync_lag"
    assert hook.received[0]["details"]["backlog"] == 1


async def test_broken_connector_cannot_kill_the_worker(
    pool: asyncpg.Pool[Any], writer: RecordWriter
) -> None:
    class Broken(BuiltinConnector):
        async def post_record(self, record: Any) -> None:
            raise ZeroDivisionError("bug")

    worker = OutboxWorker(pool, Broken(), max_attempts=1)
    await writer.submit(make_ended("4.4"))
    await writer.wait_idle()
    await worker.drain()
    assert await pool.fetchval("SELECT state FROM call_outbox") == "dead"


async def test_delivery_metrics_are_exported(pool: asyncpg.Pool[Any], writer: RecordWriter) -> None:
    from prometheus_client import REGISTRY, generate_latest

    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(name) or 0.0

    before = sample("crm_bridge_sync_lag_seconds_count")
    worker = OutboxWorker(pool, BuiltinConnector())
    await writer.submit(make_ended("8.8"))
    await writer.wait_idle()
    await worker.drain()
    assert sample("crm_bridge_sync_lag_seconds_count") == before + 1
    assert sample("crm_bridge_sync_backlog") == 0
    text = generate_latest().decode()
    for name in (
        "crm_bridge_sync_lag_oldest_seconds",
        "crm_bridge_sync_delivery_failures",
        "crm_bridge_sync_dead_letters",
        "crm_bridge_record_write_lag_seconds",
    ):
        assert name in text


async def test_a_failed_delivery_waits_a_jittered_doubling_backoff_up_to_the_cap(
    pool: asyncpg.Pool[Any], writer: RecordWriter
) -> None:
    """Retry n waits between half and all of min(backoff_max_s, backoff_s * 2**(n-1)).

    The server's clock read before and after each round brackets the `now()` that set
    `next_attempt_at`, so the bounds hold however slowly the round ran."""

    class Refusing(BuiltinConnector):
        async def post_record(self, record: Any) -> None:
            raise CrmUnavailable("the CRM is down")

    worker = OutboxWorker(pool, Refusing(), max_attempts=20, backoff_s=60, backoff_max_s=300)
    await writer.submit(make_ended("5.5"))
    await writer.wait_idle()

    async def failed_round() -> tuple[float, float]:
        before = await pool.fetchval("SELECT clock_timestamp()")
        await worker.drain()
        after = await pool.fetchval("SELECT clock_timestamp()")
        due = await pool.fetchval("SELECT next_attempt_at FROM call_outbox")
        await pool.execute("UPDATE call_outbox SET next_attempt_at = now()")  # due again
        return (due - after).total_seconds(), (due - before).total_seconds()

    for attempts, ceiling in ((0, 60), (1, 120), (2, 240), (3, 300), (10, 300)):
        await pool.execute("UPDATE call_outbox SET attempts = $1", attempts)
        low, high = await failed_round()
        assert ceiling / 2 <= high and low <= ceiling, (attempts, low, high)
    assert await pool.fetchval("SELECT attempts FROM call_outbox") == 11
