"""No call record lost across a kill -9: a real `crm-bridge run` is SIGKILLed while a burst
of calls ends on its AMI link, more calls end while it is down, it restarts (writing what
its spool acknowledged), and `crm-bridge sync run` rebuilds the rest from the PBX's own CDR
store - cdr_csv's Master.csv or a cdr_pgsql table. Every call that ended is then one
`call_records` row: those the bridge saw `source = 'live'`, the rebuilt ones 'reconciled'."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bridge.records import PbxCdr
from tests.ami.fake_ami import FakeAmi, Session
from tests.ami.test_backpressure import burst
from tests.ami.test_link import SECRET
from tests.sync.test_cdr_store import csv_line
from tests.test_run_cmd import clean_env

ROOT = Path(__file__).resolve().parents[2]
BURST = 3000  # calls ending on the link when the bridge is killed
FIRST = 1_795_000_000
DOWNTIME = 40  # calls ending while the bridge is down
DOWN_FIRST = 1_796_000_000
KILL_AFTER = 200  # rows written before the kill: the bridge is mid-burst
WAIT = 240.0  # "did not hang" bound on a shared machine
SCHEMA = "pbx_killed"


def call_ids(first: int, count: int) -> list[str]:
    return [f"{first + n}.{n}" for n in range(count)]


def cdr(call_id: str, at: datetime) -> PbxCdr:
    """The caller leg's CDR of one of `burst`'s calls: unanswered, in queue support."""
    n = int(call_id.split(".")[1])
    # Asterisk's channel counter never repeats within a boot: one name per call, whichever
    # group it is in (CDRs are grouped by channel names alive at the same time).
    counter = int(call_id.split(".")[0]) % 16**8
    return PbxCdr.from_dict(
        {
            "uniqueid": call_id,
            "channel": f"PJSIP/trunk-{counter:08x}",
            "destination_channel": "",
            "source": f"+1555{n:07d}",
            "destination": "+15550100",
            "start_time": at,
            "answer_time": None,
            "end_time": at + timedelta(seconds=1),
            "duration_s": 1,
            "billable_s": 0,
            "disposition": "NO ANSWER",
            "last_application": "Queue",
            "last_data": "support,t,,,30",
        }
    )


async def wait_until(
    pool: asyncpg.Pool[Any],
    check: Callable[[], Awaitable[bool]],
    proc: asyncio.subprocess.Process,
) -> None:
    """Until `check()` holds, checked again at each record another process commits (the
    call_records trigger's NOTIFY call_outbox) or when that process exits."""
    changed = asyncio.Event()
    exited = asyncio.ensure_future(proc.wait())
    async with pool.acquire() as conn:
        await conn.add_listener("call_outbox", lambda *_: changed.set())
        try:
            async with asyncio.timeout(WAIT):
                while True:
                    changed.clear()
                    if await check() or exited.done():
                        return
                    await asyncio.wait(
                        {asyncio.ensure_future(changed.wait()), exited},
                        return_when=asyncio.FIRST_COMPLETED,
                    )
        finally:
            await conn.reset()
            if not exited.done():
                exited.cancel()


async def bridge(config: Path, *args: str, log: Path) -> asyncio.subprocess.Process:
    out = open(log, "ab")  # noqa: ASYNC230, SIM115 - a local file, handed to the child
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bridge",
            "--config",
            str(config),
            *args,
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env={**clean_env(), "CRM_BRIDGE_RECORDS_SPOOL_DIR": str(config.parent / "spool")},
        )
    finally:
        out.close()


def spooled_ends(spool: Path) -> set[str]:
    """Call ids of end events the spool acknowledged but not yet marked committed."""
    pending: dict[int, str] = {}
    for raw in (spool / "records.jsonl").read_bytes().splitlines():
        try:
            item = json.loads(raw)
        except ValueError:
            continue  # a torn last line
        if item.get("k") == "ended":
            pending[item["n"]] = item["v"]["call_id"]
        elif item.get("k") == "ack":
            pending.pop(item["n"], None)
    return set(pending.values())


async def write_cdr_store(kind: str, tmp_path: Path, pool: asyncpg.Pool[Any], url: str) -> str:
    """Every call's CDR in the PBX's store; returns the `[pbx] cdr_source` value."""
    now = datetime.now(UTC).replace(microsecond=0)
    cdrs = [cdr(c, now) for c in call_ids(FIRST, BURST) + call_ids(DOWN_FIRST, DOWNTIME)]
    if kind == "csv":
        path = tmp_path / "Master.csv"
        path.write_text("".join(csv_line(c) for c in cdrs), encoding="utf-8")
        return f"csv:{path}"
    schema = (Path(__file__).parents[1] / "sync" / "cdr_pgsql_schema.sql").read_text()
    async with pool.acquire() as conn:
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
        await conn.execute(
            schema.replace("TABLE IF NOT EXISTS cdr", f"TABLE {SCHEMA}.cdr").replace(
                " ON cdr ", f" ON {SCHEMA}.cdr "
            )
        )
        await conn.copy_records_to_table(
            "cdr",
            schema_name=SCHEMA,
            columns=[
                "calldate",
                "src",
                "dst",
                "channel",
                "dstchannel",
                "lastapp",
                "lastdata",
                "duration",
                "billsec",
                "disposition",
                "uniqueid",
                "linkedid",
            ],
            records=[
                (
                    c.start_time,
                    c.source,
                    c.destination,
                    c.channel,
                    c.destination_channel,
                    c.last_application,
                    c.last_data,
                    c.duration_s,
                    c.billable_s,
                    c.disposition,
                    c.uniqueid,
                    c.uniqueid,
                )
                for c in cdrs
            ],
        )
    return f"{url}?table={SCHEMA}.cdr"


def write_config(path: Path, database_url: str, ami_port: int, cdr_source: str) -> Path:
    path.write_text(
        f'[database]\nurl = "{database_url}"\npool_size = 4\n'
        f'[ami]\nenabled = true\nhost = "127.0.0.1"\nport = {ami_port}\n'
        f'username = "bridge"\nsecret = "{SECRET}"\nreconnect_max_s = 0.2\n'
        '[agi]\nhost = "127.0.0.1"\nport = 0\n'
        '[http]\nhost = "127.0.0.1"\nport = 0\n'
        '[pops]\nhost = "127.0.0.1"\nport = 0\n'
        f'[pbx]\nreconcile_s = 0\ncdr_source = "{cdr_source}"\n'
        '[log]\nlevel = "info"\n',
        encoding="utf-8",
    )
    return path


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("store", ["csv", "pgsql"])
async def test_kill_9_mid_burst_then_sync_leaves_no_call_missing(
    store: str, pool: asyncpg.Pool[Any], database_url: str, tmp_path: Path
) -> None:
    source = await write_cdr_store(store, tmp_path, pool, database_url)
    log = tmp_path / "bridge.log"

    async def rows() -> dict[str, str]:
        found = await pool.fetch("SELECT call_id, source FROM call_records")
        return {r["call_id"]: r["source"] for r in found}

    try:
        sessions = [Session(play=burst(BURST), max_piece=1 << 14), Session()]
        async with FakeAmi(sessions, secret=SECRET) as pbx:
            config = write_config(tmp_path / "bridge.toml", database_url, pbx.port, source)
            first = await bridge(config, "run", log=log)
            try:

                async def mid_burst() -> bool:
                    count = await pool.fetchval("SELECT count(*) FROM call_records")
                    return bool(count >= KILL_AFTER)

                await wait_until(pool, mid_burst, first)
                assert first.returncode is None, log.read_text(errors="replace")
            finally:
                first.send_signal(signal.SIGKILL)
                await first.wait()
            assert first.returncode == -signal.SIGKILL

            written_at_kill = set(await rows())
            acknowledged = written_at_kill | spooled_ends(tmp_path / "spool")
            assert len(written_at_kill) < BURST + DOWNTIME

            # The restart writes every end the spool acknowledged before the kill, live.
            second = await bridge(config, "run", log=log)
            try:

                async def spool_replayed() -> bool:
                    return acknowledged <= set(await rows())

                await wait_until(pool, spool_replayed, second)
                assert second.returncode is None, log.read_text(errors="replace")
                second.send_signal(signal.SIGTERM)
                async with asyncio.timeout(WAIT):
                    assert await second.wait() == 0, log.read_text(errors="replace")
            finally:
                if second.returncode is None:
                    second.kill()
                    await second.wait()
        live = await rows()
        assert acknowledged <= set(live)
        assert set(live.values()) == {"live"}

        sync = await bridge(config, "sync", "run", log=log)
        async with asyncio.timeout(WAIT):
            assert await sync.wait() == 0, log.read_text(errors="replace")
    finally:
        if store == "pgsql":
            await pool.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")

    final = await rows()
    ended = set(call_ids(FIRST, BURST)) | set(call_ids(DOWN_FIRST, DOWNTIME))
    assert set(final) == ended  # zero calls missing, no call twice (call_id is the key)
    assert await pool.fetchval("SELECT count(*) FROM call_records") == len(ended)
    reconciled = {c for c, s in final.items() if s == "reconciled"}
    assert reconciled == ended - set(live)
    assert set(call_ids(DOWN_FIRST, DOWNTIME)) <= reconciled
    assert all(final[c] == "live" for c in live)
    assert "Traceback" not in log.read_text(errors="replace")
