"""Benchmark: what a call record costs, beside its floor; then records written per second and
the lag from end event to committed row (and to delivery) with the builtin connector and with
the REST connector posting to a local aiohttp CRM. Real PostgreSQL, real fsync'd spool.

    .venv/bin/python bench/records.py [--calls-per-s 100] [--seconds 10] [--burst 3000]
                                      [--cdrs-per-call 5] [--rounds 3] [--floor-only]

1. Cost per call, `--rounds` interleaved rounds of `--calls-per-s` calls/s for `--seconds`:
   the `RecordWriter` fed as the live AMI link feeds it (`on_events`: each call's
   `--cdrs-per-call` Asterisk Cdrs, then its end, a queue call with one agent produces about
   five), beside the floor of that work: per call one fsync'd spool line and one INSERT. Prints
   the process CPU per call and the p99 end event → committed row of both, their ratios and
   the load average.
2. Each steady call also brings its Cdrs, kept through the same spool.

Uses a throw-away database on $CRM_BRIDGE_TEST_PG (default postgres@127.0.0.1:5432).
Prints figures measured in this one run; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
from bridge.pbx_events import CdrRecord
from bridge.records import PbxCdr, RecordWriter, Spool
from bridge.records.codec import ended_to_dict
from bridge.records.outbox import OutboxWorker

ADMIN = os.environ.get("CRM_BRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def ended(call_id: str, now: datetime, cdrs: int = 1) -> CallEnded:
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
        uniqueids=(call_id, *(f"{call_id}-{k}" for k in range(1, cdrs))),
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
            uniqueid=f"{call_id}-{k}",
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


def cdr_events(call_id: str, now: datetime, count: int) -> list[CdrRecord]:
    """The AMI `Cdr` events of one call, one per channel (uniqueids as in `ended`)."""
    start = (now - timedelta(seconds=40)).strftime("%Y-%m-%d %H:%M:%S")
    return [
        CdrRecord(
            at=now,
            uniqueid=call_id if k == 0 else f"{call_id}-{k}",
            channel=f"PJSIP/trunk-{k:08x}",
            destination_channel="PJSIP/1001-0000000a" if k == 0 else "",
            source="+15551230002",
            destination="18005550100",
            disposition="ANSWERED",
            billable_s=32,
            duration_s=40,
            start_time=start,
            answer_time=start,
            end_time=now.strftime("%Y-%m-%d %H:%M:%S"),
            last_application="Queue" if k == 0 else "Wait",
            last_data="support,t,,,30",
        )
        for k in range(count)
    ]


async def paced(rate: float, seconds: float) -> Any:
    """Yield call numbers at `rate` per second."""
    n = int(rate * seconds)
    t0 = time.perf_counter()
    for i in range(n):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        yield i


async def writer_round(
    pool: asyncpg.Pool[Any], tag: str, rate: float, seconds: float, cdrs: int
) -> tuple[float, list[float]]:
    """The writer fed like the AMI link feeds it: CPU ms per call, end → committed lags (s)."""
    with tempfile.TemporaryDirectory() as spool_dir:
        writer = RecordWriter(pool, Spool(Path(spool_dir)), region="US")
        submitted: dict[str, float] = {}
        lags: list[float] = []

        def committed(kind: str, key: str, at: datetime) -> None:
            if kind == "ended" and key in submitted:
                lags.append(time.perf_counter() - submitted.pop(key))

        writer.on_committed(committed)
        await writer.start()
        calls = 0
        cpu = time.process_time()
        async for i in paced(rate, seconds):
            call_id = f"{tag}.{i}"
            now = datetime.now(UTC)
            for cdr in cdr_events(call_id, now, cdrs):
                await writer.on_events([cdr])
            event = ended(call_id, now, cdrs)
            submitted[call_id] = time.perf_counter()
            await writer.on_events([event])
            calls += 1
        await writer.wait_idle()
        cpu = time.process_time() - cpu
        await writer.stop()
    return cpu / calls * 1000, lags


async def floor_round(
    pool: asyncpg.Pool[Any], tag: str, rate: float, seconds: float, cdrs: int
) -> tuple[float, list[float]]:
    """The floor: per call, the end event's line fsync'd to a file and one INSERT."""
    lags: list[float] = []
    calls = 0
    with tempfile.TemporaryDirectory() as spool_dir:
        f = await asyncio.to_thread(open, Path(spool_dir) / "floor.jsonl", "ab")
        with f:

            def append(line: bytes) -> None:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())

            cpu = time.process_time()
            async for i in paced(rate, seconds):
                call_id = f"{tag}.{i}"
                now = datetime.now(UTC)
                cdr_events(call_id, now, cdrs)  # built as for the writer, not kept
                event = ended(call_id, now, cdrs)
                t0 = time.perf_counter()
                body = json.dumps(ended_to_dict(event), separators=(",", ":"))
                await asyncio.to_thread(append, body.encode() + b"\n")
                await pool.execute(
                    "INSERT INTO bench_floor (call_id, body) VALUES ($1, $2)", call_id, body
                )
                lags.append(time.perf_counter() - t0)
                calls += 1
            cpu = time.process_time() - cpu
    return cpu / calls * 1000, lags


async def cost_per_call(url: str, rate: float, seconds: float, cdrs: int, rounds: int) -> None:
    pool = await create_pool(url, min_size=2, max_size=10)
    await pool.execute(
        "CREATE TABLE IF NOT EXISTS bench_floor (call_id text PRIMARY KEY, body text)"
    )
    print(f"load average at start: {load()}")
    cpu: dict[str, list[float]] = {"writer": [], "floor": []}
    lags: dict[str, list[float]] = {"writer": [], "floor": []}
    try:
        for r in range(rounds):
            order = ("writer", "floor") if r % 2 == 0 else ("floor", "writer")
            for path in order:
                run = writer_round if path == "writer" else floor_round
                per_call, lag = await run(pool, f"{path}-{r}", rate, seconds, cdrs)
                cpu[path].append(per_call)
                lags[path].extend(lag)
                print(
                    f"round {r + 1} {path:<6}: CPU {per_call:.2f} ms/call,"
                    f" end->committed p99 {pct(lag, 99) * 1000:.2f} ms   (load {load()})"
                )
    finally:
        await pool.close()
    print(f"cost per call at {rate:.0f} calls/s (+{cdrs} Cdrs each), {rounds} interleaved rounds:")
    for path in ("writer", "floor"):
        print(
            f"  {path:<6} CPU {statistics.median(cpu[path]):.2f} ms/call (median of rounds),"
            f" end->committed p50 {pct(lags[path], 50) * 1000:.2f} ms"
            f" p99 {pct(lags[path], 99) * 1000:.2f} ms"
        )
    cpu_ratio = statistics.median(cpu["writer"]) / statistics.median(cpu["floor"])
    lag_ratio = pct(lags["writer"], 99) / pct(lags["floor"], 99)
    print(f"  ratio writer/floor: CPU x{cpu_ratio:.2f}, end->committed p99 x{lag_ratio:.2f}")
    print(f"load average at end: {load()}")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--floor-only", action="store_true", help="only the cost per call")
    args = parser.parse_args()
    name = f"crmbridge_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN.rpartition("/")[0] + "/" + name
    try:
        await migrate(url)
        await cost_per_call(url, args.calls_per_s, args.seconds, args.cdrs_per_call, args.rounds)
        if args.floor_only:
            return
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
