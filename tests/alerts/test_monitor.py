"""Each way the promise breaks, caused for real, alerts the webhook, the mailbox and the SMS
gateway on loopback, then announces its resolution. Time-based conditions run on a moved
clock: nothing here sleeps."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bridge.alerts.conditions import RateWindow
from bridge.alerts.monitor import (
    ChangeLag,
    Monitor,
    Watch,
    change_lag_probe,
    commit_lag_probe,
    degraded_probe,
    link_probe,
    spool_probe,
)
from bridge.ami.link import AmiLink, LinkState
from bridge.config import DEFAULT_DEVICE_PATTERN, AmiConfig, build_config
from bridge.errors import CrmUnavailable
from bridge.models import Customer, InboundCall
from bridge.records.spool import Spool
from bridge.records.writer import RecordWriter
from bridge.routing.service import PostgresDecisionLog, RouteService
from bridge.routing.store import RuleStore
from bridge.sim import AmiServer, AmiUser, SimConfig, SimPbx
from bridge.sync.reconcile import backfill
from tests.alerts.conftest import Channels
from tests.flood import wait_until
from tests.records.factory import make_ended


class Clock:
    """Monotonic seconds the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def settle(channels: Channels) -> list[tuple[str, str]]:
    await channels.alerter.drain()
    return channels.seen()


async def test_ami_link_down_past_link_down_s_alerts_then_resolves(channels: Channels) -> None:
    pbx = SimPbx(SimConfig(ami_users=(AmiUser("bridge", "s3cret"),)))
    server = AmiServer(pbx)
    await server.start()
    port = server.port
    link = AmiLink(AmiConfig(port=port, username="bridge", secret="s3cret", reconnect_max_s=0.2))
    clock = Clock()
    monitor = Monitor(
        channels.alerter, [Watch("ami_down", link_probe("AMI", link), 10)], clock=clock
    )
    await link.start()
    try:
        await asyncio.wait_for(link.connected(), 10)
        assert await monitor.check() == []
        await server.stop()  # the PBX's manager goes away
        await wait_until(lambda: link.state is not LinkState.CONNECTED)
        assert await monitor.check() == []  # down, but not yet for link_down_s
        clock.now += 9.9
        assert await monitor.check() == []
        clock.now += 0.2
        assert await monitor.check() == [("ami_down", "fire")]
        clock.now += 60
        assert await monitor.check() == []  # one alert per episode
        server = AmiServer(pbx, port=port)
        await server.start()
        await asyncio.wait_for(link.connected(sessions=2), 10)  # logged in again
        assert await monitor.check() == [("ami_down", "resolve")]
    finally:
        await link.stop()
        await server.stop()
    assert await settle(channels) == [("firing", "ami_down"), ("resolved", "ami_down")]
    assert channels.hook.received[0]["details"]["link"] == "AMI"
    sms = channels.sms.received[0]
    assert sms["to"] == "+15551112222" and sms["sid"] == "AC123"


async def test_call_records_locked_past_the_threshold_alert_then_resolve(
    pool: asyncpg.Pool[Any], tmp_path: Path, channels: Channels
) -> None:
    writer = RecordWriter(pool, Spool(tmp_path / "spool"), region="US")
    await writer.start()
    now = [datetime.now(UTC)]
    monitor = Monitor(
        channels.alerter,
        [Watch("record_lag", commit_lag_probe(writer.oldest_pending_end, 5.0, lambda: now[0]))],
    )
    ended = make_ended("lag.1", start=now[0] - timedelta(seconds=40))
    end_at = ended.summary.ended_at
    now[0] = end_at
    try:
        async with pool.acquire() as locker:
            tx = locker.transaction()
            await tx.start()
            await locker.execute("LOCK TABLE call_records IN ACCESS EXCLUSIVE MODE")
            await writer.submit(ended)  # spooled; its insert now waits on the lock
            assert writer.oldest_pending_end() == end_at
            now[0] = end_at + timedelta(seconds=4)
            assert await monitor.check() == []
            now[0] = end_at + timedelta(seconds=6)
            assert await monitor.check() == [("record_lag", "fire")]
            await tx.rollback()  # the lock goes, the record commits
        await writer.wait_idle()
        assert await pool.fetchval("SELECT count(*) FROM call_records WHERE call_id = 'lag.1'")
        assert await monitor.check() == [("record_lag", "resolve")]
    finally:
        await writer.stop()
    assert await settle(channels) == [("firing", "record_lag"), ("resolved", "record_lag")]
    assert channels.hook.received[0]["details"]["lag_s"] == 6.0


async def test_a_crm_change_arriving_late_alerts_until_one_arrives_in_time(
    pool: asyncpg.Pool[Any], channels: Channels
) -> None:
    import json

    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from bridge.crm.webhook import SIGNATURE_HEADER, WebhookDeps, setup_webhook_routes, sign
    from tests.crm.test_webhook import NOW, SECRET, upsert
    from tests.crm.test_webhook import Clock as WebClock

    meter = ChangeLag()
    config = build_config({"webhook": {"secret": SECRET}}, {}, runtime=False)
    app = web.Application()
    deps = WebhookDeps(pool=pool, config=config, clock=WebClock(), on_change_lag=meter.observe)
    setup_webhook_routes(app, deps)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    monitor = Monitor(channels.alerter, [Watch("crm_change_lag", change_lag_probe(meter, 5.0))])

    async def deliver(cid: str, made_s_ago: float) -> None:
        at = datetime.fromtimestamp(NOW - made_s_ago, UTC).isoformat()
        body = json.dumps({"changes": [upsert(cid, at, name="Late Larry")]}).encode()
        resp = await client.post(
            "/crm/webhook",
            data=body,
            headers={SIGNATURE_HEADER: sign(SECRET, body, NOW), "Content-Type": "application/json"},
        )
        assert resp.status == 200 and (await resp.json())["applied"] == 1

    try:
        await deliver("c-late-1", 2)
        assert await monitor.check() == []
        await deliver("c-late-2", 8)  # the CRM held this change back 8 s
        assert await monitor.check() == [("crm_change_lag", "fire")]
        assert await monitor.check() == []  # still late: nothing timely arrived since
        await deliver("c-late-3", 1)
        assert await monitor.check() == [("crm_change_lag", "resolve")]
    finally:
        await client.close()
    assert await settle(channels) == [("firing", "crm_change_lag"), ("resolved", "crm_change_lag")]
    assert channels.hook.received[0]["details"]["lag_s"] == 8.0


async def test_a_decision_without_a_record_after_reconciliation_is_data_loss(
    pool: asyncpg.Pool[Any], channels: Channels
) -> None:
    await pool.execute(
        "INSERT INTO route_decisions (uniqueid, linkedid, queue, rule, decided_at)"
        " VALUES ('lost.1', 'lost.1', 'support', 'default', now() - interval '2 days')"
    )
    result = await backfill(
        pool,
        re.compile(DEFAULT_DEVICE_PATTERN),
        None,
        max_call_s=3600,
        alerts=channels.alerter,
        region="US",
    )
    assert [call_id for call_id, _ in result.unrebuildable] == ["lost.1"]
    assert await settle(channels) == [("firing", "data_loss")]
    assert channels.hook.received[0]["details"]["call_id"] == "lost.1"


async def test_a_dead_letter_reaches_every_channel(channels: Channels) -> None:
    # What the outbox calls when a record exhausts its attempts (tests/records/test_outbox.py
    # proves it calls it); here: that the alert reaches the three receivers.
    assert channels.alerter.alert("dead_letter", "dl.1", "call record dl.1 undeliverable")
    assert await settle(channels) == [("firing", "dead_letter")]


class DownCrm:
    def __init__(self) -> None:
        self.down = True

    async def lookup(self, e164: str) -> Customer | None:
        if self.down:
            raise CrmUnavailable("connection refused")
        return None


async def test_routing_degraded_above_degraded_pct_over_the_window(
    pool: asyncpg.Pool[Any], channels: Channels
) -> None:
    rules = RuleStore(pool)
    await rules.start()
    crm = DownCrm()
    service = RouteService(
        crm, rules, build_config({}, {}, runtime=False), decisions=PostgresDecisionLog(rules.pool)
    )
    clock = Clock()
    probe, observe = degraded_probe(RateWindow(300), 5.0, 20, clock)
    service.on_decision(observe)
    monitor = Monitor(channels.alerter, [Watch("routing_degraded", probe)], clock=clock)

    def call(n: int) -> InboundCall:
        return InboundCall(
            raw_caller="+15551230001",
            caller="+15551230001",
            caller_name="",
            did="18005550100",
            at=datetime.now(UTC),
            channel="PJSIP/trunk-1",
            uniqueid=f"deg.{n}",
            linkedid=f"deg.{n}",
        )

    try:
        crm.down = False
        for n in range(19):
            await service.route(call(n))
        crm.down = True
        await service.route(call(19))  # 1 of 20 = 5 %: not above
        assert await monitor.check() == []
        await service.route(call(20))  # 2 of 21 > 5 %
        assert await monitor.check() == [("routing_degraded", "fire")]
        clock.now += 301  # the window moves past every decision
        assert await monitor.check() == [("routing_degraded", "resolve")]
        await service.drain(within_s=5.0)
    finally:
        await service.stop()
        await rules.stop()
    assert await settle(channels) == [
        ("firing", "routing_degraded"),
        ("resolved", "routing_degraded"),
    ]
    assert channels.hook.received[0]["details"] == {
        "degraded": 2,
        "calls": 21,
        "threshold_pct": 5.0,
    }


async def test_spool_disk_nearly_full_alerts_then_resolves(
    tmp_path: Path, channels: Channels
) -> None:
    free = [0.5]
    monitor = Monitor(
        channels.alerter,
        [Watch("spool_disk", spool_probe(tmp_path, 10.0, lambda _path: free[0]))],
    )
    assert await monitor.check() == []
    free[0] = 0.04
    assert await monitor.check() == [("spool_disk", "fire")]
    free[0] = 0.3
    assert await monitor.check() == [("spool_disk", "resolve")]
    assert await settle(channels) == [("firing", "spool_disk"), ("resolved", "spool_disk")]
    assert channels.hook.received[0]["details"]["free_pct"] == 4.0


async def test_the_real_free_space_probe_reads_the_spool_filesystem(tmp_path: Path) -> None:
    reading = spool_probe(tmp_path, 0.0)()
    assert not reading.bad and 0 < reading.value <= 100  # type: ignore[union-attr]
    missing = spool_probe(tmp_path / "not-yet" / "spool", 0.0)()  # created at first write
    assert missing.value == pytest.approx(reading.value, abs=1.0)  # type: ignore[union-attr]


async def test_a_resolution_is_sent_only_for_an_alert_that_went_out(channels: Channels) -> None:
    assert not channels.alerter.resolve("ami_down", "condition", "never fired")
    assert channels.alerter.alert("ami_down", "condition", "down")
    assert channels.alerter.resolve("ami_down", "condition", "cleared")
    assert not channels.alerter.resolve("ami_down", "condition", "cleared twice")
    assert await settle(channels) == [("firing", "ami_down"), ("resolved", "ami_down")]
