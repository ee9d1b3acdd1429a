"""Benchmark: call records written per second, and the lag from end event to committed row
(and to delivery) at a steady 100 calls/s, with the builtin connector and with the REST
connector posting to a local aiohttp CRM. Real PostgreSQL, real fsync'd spool.

    .venv/bin/python bench/records.py [--calls-per-s 100] [--seconds 10] [--burst 3000]
                                      [--cdrs-per-call 5]

Each steady call also brings `--cdrs-per-call` Asterisk Cdrs (a queue call with one agent
produces about five), kept through the same spool, as the live AMI link delivers them.

Uses a throw-away database on $CRM_BRIDGE_TEST_PG (default postgres@127.0.0.1:5432).
Prints figures measured in this one run; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from bridge.config import build_config
from bridge.connectors import BuiltinConnector, RestConnector
from bridge.db.migrate import migrate
from bridge.db.pool import create_pool
from bridge.models import AgentLeg, CallEnded, CallSummary
from bridge.records import PbxCdr, RecordWriter, Spool
from bridge.records.outbox import OutboxWorker

ADMIN = os.environ.get("CRM_BRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def ended(call_id: str, now: datetime) -> CallEnded:
    start = now - timedelta(seconds=40)
    answered = start + timedelta(seconds=8)
    summary = CallSummary(
        call_id=call_id,
        caller="+15551230002",
        caller_name="Bench",
        did="18005550100",
        queue="support",
        started_at=start,
        answered_at=answered,
        ended_at=now,
        duration_s=40,
        talk_s=32,
        outcome="answered",
        agents=(AgentLeg("1001", answered, 32),),
        recording_path=f"/var/spool/asterisk/monitor/{call_id}.wav",
        uniqueids=(call_id, call_id + "1"),
    )
    return CallEnded(call_id, now, summary)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class LocalCrm:
    def __init__(self) -> None:
        self.accepted = 0
        app = web.Application()
        app.router.add_post("/calls/{call_id}", self._post)
        self.runner = web.AppRunner(app, access_log=None)
        self.url = ""

    async def _post(self, request: web.Request) -> web.Response:
        await request.read()
        self.accepted += 1
        return web.json_response({"ok": True}, status=201)

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        await self.runner.cleanup()


def cdrs_for(call_id: str, now: datetime, count: int) -> list[PbxCdr]:
    start = now - timedelta(seconds=40)
    return [
        PbxCdr(
            uniqueid=f"{call_id}{k}",
            channel=f"PJSIP/trunk-{k:08x}",
            destination_channel="PJSIP/1001-0000000a" if k == 0 else "",
            source="+15551230002",
            destination="18005550100",
            start_time=start,
            answer_time=start + timedelta(seconds=8),
            end_time=now,
            duration_s=40,
            billable_s=32,
            disposition="ANSWERED",
            last_application="Queue" if k == 0 else "Wait",
            last_data="support,t,,,30",
        )
        for k in range(count)
    ]


async def run_case(
    url: str,
    label: str,
    *,
    rest: bool,
    rate: float,
    seconds: float,
    burst: int,
    cdrs_per_call: int,
) -> dict[str, Any]:
    pool = await create_pool(url, min_size=2, max_size=10)
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE call_records, pbx_cdrs, call_dead_letters CASCADE")
    crm = LocalCrm()
    if rest:
        await crm.start()
        config = build_config(
            {
                "crm": {
                    "connector": "rest",
                    "lookup_url": f"{crm.url}/customers?phone={{phone}}",
                    "records_url": f"{crm.url}/calls/{{call_id}}",
                }
            },
            {},
            runtime=False,
        )
        connector: Any = RestConnector(config.crm)
    else:
        connector = BuiltinConnector()
    await connector.start()
    with tempfile.TemporaryDirectory() as spool_dir:
        writer = RecordWriter(pool, Spool(Path(spool_dir)), region="US")
        worker = OutboxWorker(pool, connector, poll_s=0.05)
        submitted: dict[str, float] = {}
        commit_lag: list[float] = []
        deliver_lag: list[float] = []
        ack_lag: list[float] = []

        def committed(kind: str, key: str, at: datetime) -> None:
            if key in submitted:
                commit_lag.append(time.perf_counter() - submitted[key])
            worker.wake()

        delivered = {"count": 0, "target": 0}
        reached = asyncio.Event()

        def outcome(call_id: str, result: str, lag: float) -> None:
            if result != "delivered":
                return
            if call_id in submitted:
                deliver_lag.append(time.perf_counter() - submitted[call_id])
            delivered["count"] += 1
            if delivered["count"] >= delivered["target"]:
                reached.set()

        async def delivered_total(total: int) -> None:
            delivered["target"] = total
            if delivered["count"] < total:
                reached.clear()
                async with asyncio.timeout(300):
                    await reached.wait()

        writer.on_committed(committed)
        worker.on_outcome(outcome)
        await writer.start()
        await worker.start()

        # 1. Steady load: `rate` end events per second for `seconds`.
        n = int(rate * seconds)
        t0 = time.perf_counter()
        for i in range(n):
            slot = t0 + i / rate
            delay = slot - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            call_id = f"{label}-steady.{i}"
            submitted[call_id] = time.perf_counter()
            now = datetime.now(UTC)
            await writer.submit(ended(call_id, now))
            ack_lag.append(time.perf_counter() - submitted[call_id])
            for cdr in cdrs_for(call_id, now, cdrs_per_call):
                await writer.store_cdr(cdr)
        await writer.wait_idle()
        await delivered_total(n)
        steady_elapsed = time.perf_counter() - t0

        # 2. Burst: as many end events as fast as they come (batches of 50, like a backlog).
        reached.clear()
        b0 = time.perf_counter()
        now = datetime.now(UTC)
        for start in range(0, burst, 50):
            await writer.submit_many(
                [ended(f"{label}-burst.{i}", now) for i in range(start, min(burst, start + 50))]
            )
        await writer.wait_idle()
        burst_elapsed = time.perf_counter() - b0
        await delivered_total(n + burst)
        deliver_elapsed = time.perf_counter() - b0

        await worker.stop()
        await writer.stop()
    await connector.stop()
    if rest:
        await crm.close()
    await pool.close()
    return {
        "label": label,
        "steady_calls": n,
        "steady_rate": n / steady_elapsed,
        "ack_p99_ms": pct(ack_lag, 99) * 1000,
        "commit_p50_ms": statistics.median(commit_lag) * 1000,
        "commit_p99_ms": pct(commit_lag, 99) * 1000,
        "deliver_p50_ms": statistics.median(deliver_lag) * 1000,
        "deliver_p99_ms": pct(deliver_lag, 99) * 1000,
        "burst_records_per_s": burst / burst_elapsed,
        "burst_delivered_per_s": burst / max(deliver_elapsed, 1e-9),
        "crm_accepted": crm.accepted,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls-per-s", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--burst", type=int, default=3000)
    parser.add_argument("--cdrs-per-call", type=int, default=5)
    args = parser.parse_args()
    name = f"crmbridge_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN.rpartition("/")[0] + "/" + name
    try:
        await migrate(url)
        results = []
        for label, rest in (("builtin", False), ("rest", True)):
            results.append(
                await run_case(
                    url,
                    label,
                    rest=rest,
                    rate=args.calls_per_s,
                    seconds=args.seconds,
                    burst=args.burst,
                    cdrs_per_call=args.cdrs_per_call,
                )
            )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    print(
        f"call records: {args.calls_per_s:.0f} calls/s (+{args.cdrs_per_call} Cdrs each)"
        f" for {args.seconds:.0f} s, then a burst of {args.burst} end events"
    )
    for r in results:
        print(
            f"  [{r['label']:7}] steady {r['steady_rate']:.1f} calls/s:"
            f" spool ack p99 {r['ack_p99_ms']:.2f} ms;"
            f" end->committed p50 {r['commit_p50_ms']:.2f} ms p99 {r['commit_p99_ms']:.2f} ms;"
            f" end->delivered p50 {r['deliver_p50_ms']:.1f} ms p99 {r['deliver_p99_ms']:.1f} ms"
        )
        print(
            f"  [{r['label']:7}] burst: {r['burst_records_per_s']:.0f} records written/s,"
            f" {r['burst_delivered_per_s']:.0f} written+delivered/s"
            f" (CRM accepted {r['crm_accepted']})"
        )
    base, rest_r = results
    print(
        f"  ratio rest/builtin: commit p99 x{rest_r['commit_p99_ms'] / base['commit_p99_ms']:.2f},"
        f" write throughput x{rest_r['burst_records_per_s'] / base['burst_records_per_s']:.2f},"
        f" delivery p99 x{rest_r['deliver_p99_ms'] / base['deliver_p99_ms']:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
