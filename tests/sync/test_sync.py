"""`crm-bridge sync run`: calls rebuilt from kept Cdrs, missing records backfilled (inferred),
unacknowledged records re-sent; and the command itself, as cron would run it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bridge.ami.decode import decode_event
from bridge.ami.protocol import AmiParser
from bridge.ami_replay import replay_frames
from bridge.config import DEFAULT_DEVICE_PATTERN
from bridge.connectors import BuiltinConnector
from bridge.models import CallEnded
from bridge.pbx_events import CdrRecord
from bridge.records import PbxCdr, RecordWriter
from bridge.sync import run_sync
from bridge.sync.cdrs import INFERRED_FROM_CDR, call_from_cdrs, group_cdrs, handset_index
from bridge.tracker import CallTracker
from tests.conftest import TRACES
from tests.connectors.crm_server import TOKEN, CrmServer
from tests.records.helpers import (
    AGENTS,
    AMI_SCENARIOS,
    ended_events,
    seed_crm,
    seed_decisions,
)

PATTERN = re.compile(DEFAULT_DEVICE_PATTERN)
ROOT = Path(__file__).resolve().parents[2]


def trace_cdrs(scenario: str, *, decoded: bool = False) -> list[PbxCdr]:
    """The trace's Cdrs from raw AMI headers, or through the decoder's CdrRecord."""
    frames = AmiParser().feed((TRACES / scenario / "ami.log").read_bytes())
    if decoded:
        events = [decode_event(f, datetime.now(UTC)) for f in frames]
        return [PbxCdr.from_event(e) for e in events if isinstance(e, CdrRecord)]
    return [PbxCdr.from_fields(f) for f in frames if f.get("Event") == "Cdr"]


# Rebuilding from Cdrs alone does not yet follow Local hops (ring groups, follow-me,
# FreePBX transfers) nor calls an agent placed: those recordings say `"cdr_rebuild": false`.
CDR_SCENARIOS = [
    s
    for s in AMI_SCENARIOS
    if json.loads((TRACES / s / "scenario.json").read_text()).get("cdr_rebuild", True)
]


@pytest.mark.parametrize("decoded", [False, True], ids=["headers", "decoded"])
@pytest.mark.parametrize("scenario", CDR_SCENARIOS)
def test_cdrs_alone_rebuild_what_the_live_tracker_saw(scenario: str, decoded: bool) -> None:
    cdrs = trace_cdrs(scenario, decoded=decoded)
    live = {e.call_id: e.summary for e in ended_events(scenario)}
    call_of = {u: cid for cid, s in live.items() for u in s.uniqueids}
    rebuilt = {}
    for call_id, group in group_cdrs(cdrs, call_of).items():
        event = call_from_cdrs(call_id, group, PATTERN, handsets=handset_index(cdrs))
        if event is not None:
            rebuilt[call_id] = event.summary
    assert set(rebuilt) == set(live)
    for call_id, s in rebuilt.items():
        t = live[call_id]
        assert (s.caller, s.queue, s.outcome, s.talk_s) == (t.caller, t.queue, t.outcome, t.talk_s)
        assert [(a.device, a.talk_s) for a in s.agents] == [(a.device, a.talk_s) for a in t.agents]
        assert s.inferred == INFERRED_FROM_CDR


@pytest.mark.parametrize("scenario", CDR_SCENARIOS)
def test_cdrs_with_no_linkedid_and_no_decision_group_into_their_calls(scenario: str) -> None:
    """cdr_csv without newcdrcolumns, a call that started and ended while the bridge was
    down: nothing maps a UniqueID to its call, yet each call is rebuilt once, keyed by its
    Linkedid (found live on the lab Asterisk: the queue leg's `;2` became a call of its own)."""
    cdrs = trace_cdrs(scenario)
    live = {e.call_id: e.summary for e in ended_events(scenario)}
    groups = group_cdrs(cdrs, {})
    assert set(groups) == set(live)  # every CDR, handsets too, joined its call
    rebuilt = {}
    for call_id, group in groups.items():
        event = call_from_cdrs(call_id, group, PATTERN, handsets=handset_index(cdrs))
        if event is not None:
            rebuilt[call_id] = event.summary
    assert set(rebuilt) == set(live)
    for call_id, s in rebuilt.items():
        t = live[call_id]
        assert (s.caller, s.queue, s.outcome, s.talk_s) == (t.caller, t.queue, t.outcome, t.talk_s)
        assert [(a.device, a.talk_s) for a in s.agents] == [(a.device, a.talk_s) for a in t.agents]


def _shifted(cdrs: list[PbxCdr], seconds: int, seq: int) -> list[PbxCdr]:
    """The same call again later, as after a PBX restart: channel names repeat."""
    delta = timedelta(seconds=seconds)
    out = []
    for c in cdrs:
        epoch, counter = c.uniqueid.split(".")
        out.append(
            dataclasses.replace(
                c,
                uniqueid=f"{int(epoch) + seconds}.{int(counter) + seq}",
                start_time=c.start_time + delta if c.start_time else None,
                answer_time=c.answer_time + delta if c.answer_time else None,
                end_time=c.end_time + delta if c.end_time else None,
            )
        )
    return out


def test_a_channel_name_reused_later_links_no_two_calls() -> None:
    first = trace_cdrs("regular-answered")
    (call_id,) = {e.call_id for e in ended_events("regular-answered")}
    again = _shifted(first, 3600, 0)  # names restart at 00000000 after a PBX restart
    groups = group_cdrs(first + again, {})
    assert sorted(len(g) for g in groups.values()) == [len(first)] * 2
    assert call_id in groups


def _dahdi_call(uniqueid: str, start: datetime, seconds: int) -> PbxCdr:
    return PbxCdr(
        uniqueid,
        channel="DAHDI/1-1",
        destination_channel="DAHDI/5-1",
        source="+15559990001",
        start_time=start,
        answer_time=start,
        end_time=start + timedelta(seconds=seconds),
        duration_s=seconds,
        billable_s=seconds,
        disposition="ANSWERED",
        last_application="Queue",
        last_data="support",
    )


def test_dahdi_names_back_to_back_in_one_second_stay_two_calls() -> None:
    t = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    first, second = (
        _dahdi_call("1796000000.1", t, 5),
        _dahdi_call("1796000005.2", t + timedelta(seconds=5), 5),
    )
    assert group_cdrs([first, second], {}) == {"1796000000.1": [first], "1796000005.2": [second]}


def test_a_known_call_wins_over_the_links() -> None:
    cdrs = trace_cdrs("regular-answered")
    (call_id,) = {e.call_id for e in ended_events("regular-answered")}
    assert set(group_cdrs(cdrs, {cdrs[-1].uniqueid: "known"})) == {"known"}
    split = group_cdrs(cdrs, {c.uniqueid: c.uniqueid for c in cdrs})
    assert set(split) == {c.uniqueid for c in cdrs}  # conflicting knowledge is not merged
    assert call_id in split


LAB = ROOT / "tests" / "fixtures" / "lab-live"


@pytest.mark.parametrize(
    ("scenario", "first", "talk"),
    [
        ("attended-transfer-unoptimised", "1001", [("1001", 7), ("2001", 2)]),
        ("attended-transfer-early-leave", "1002", [("1002", 4), ("2001", 2)]),
    ],
)
def test_an_attended_transfer_whose_local_pair_stays_is_rebuilt_with_both_agents(
    scenario: str, first: str, talk: list[tuple[str, int]]
) -> None:
    """Recorded live (tests/fixtures/lab-live): the customer's last Cdr goes to the
    consultation's Local pair, none names 2001's phone; 2001 still took the call over when
    the transferer hung up, and talks from then on."""
    frames = AmiParser().feed((LAB / scenario / "ami.log").read_bytes())
    cdrs = [PbxCdr.from_fields(f) for f in frames if f.get("Event") == "Cdr"]
    groups = group_cdrs(cdrs, {})
    assert len(groups) == 1
    ((call_id, group),) = groups.items()
    event = call_from_cdrs(call_id, group, PATTERN, handsets=handset_index(cdrs))
    assert event is not None
    s = event.summary
    assert [(a.device, a.talk_s) for a in s.agents] == talk
    assert s.talk_s == sum(t for _, t in talk) <= s.duration_s
    assert s.agents[1].answered_at == max(
        c.end_time for c in cdrs if c.channel.startswith(f"Local/{first}@phones") and c.end_time
    )


def test_an_agent_handset_cdr_alone_is_not_a_call() -> None:
    (handset,) = [c for c in trace_cdrs("regular-answered") if c.channel.startswith("Local/1001")]
    assert call_from_cdrs(handset.uniqueid, [handset], PATTERN) is None


async def test_calls_never_recorded_are_backfilled_from_kept_cdrs(
    pool: asyncpg.Pool[Any], writer: RecordWriter
) -> None:
    """The AMI link (or the bridge) was down when these calls ended: no CallEnded ever
    reached the writer, only the Cdrs were kept. The sync completes every record."""
    async with pool.acquire() as conn:
        await seed_crm(conn)
        for scenario in ("vip-answered", "blind-transfer", "abandoned", "concurrent-8"):
            await seed_decisions(conn, scenario, linkedid=True)
    for scenario in ("vip-answered", "blind-transfer", "abandoned", "concurrent-8"):
        frames = AmiParser().feed((TRACES / scenario / "ami.log").read_bytes())
        for frame in frames:
            # What the AMI link's link publishes: CdrRecord, as the writer subscribes to it.
            event = decode_event(frame, datetime.now(UTC))
            if isinstance(event, CdrRecord):
                await writer.on_event(event)
                await writer.on_event(event)  # re-sent Cdrs are kept once
    await writer.wait_idle()
    assert await pool.fetchval("SELECT count(*) FROM pbx_cdrs") == 5 + 5 + 3 + 24
    # A disposition was filed during the call, before any record existed.
    await pool.execute(
        "INSERT INTO call_records (call_id, disposition, notes)"
        " VALUES ('1795464246.0', 'resolved', 'kept')"
    )

    summary = await run_sync(pool, BuiltinConnector(), PATTERN, since=None, region="US")
    assert (summary.checked, summary.backfilled) == (11, 11)
    assert summary.resent == 11 and summary.delivered == 11 and summary.dead_lettered == 0

    vip = await pool.fetchrow("SELECT * FROM call_records WHERE call_id = '1795464246.0'")
    assert (vip["customer_id"], vip["queue"], vip["outcome"], vip["talk_s"]) == (
        "c-alice",
        "senior",
        "answered",
        2,
    )
    assert [a["agent"] for a in vip["agents"]] == [AGENTS["2001"]]
    assert (vip["disposition"], vip["notes"]) == ("resolved", "kept")
    assert vip["recording_path"] == "1795464246.1.wav"
    assert set(INFERRED_FROM_CDR) | {"recording_path"} <= set(vip["inferred"])
    transfer = await pool.fetchrow(
        "SELECT agents FROM call_records WHERE call_id = '1795464271.28'"
    )
    assert [(a["agent"], a["talk_s"]) for a in transfer["agents"]] == [("ann", 1), ("sue", 4)]
    abandoned = await pool.fetchrow("SELECT * FROM call_records WHERE call_id = '1795464264.20'")
    assert abandoned["outcome"] == "abandoned" and abandoned["agents"] == []
    assert await pool.fetchval("SELECT count(*) FROM service_history") == 3  # Alice, Bob x2

    again = await run_sync(pool, BuiltinConnector(), PATTERN, since=None, region="US")
    assert (again.checked, again.backfilled, again.resent) == (11, 0, 0)


async def test_live_records_are_checked_not_rewritten(
    pool: asyncpg.Pool[Any], writer: RecordWriter
) -> None:
    async with pool.acquire() as conn:
        await seed_crm(conn)
        await seed_decisions(conn, "concurrent-8")
    for event in ended_events("concurrent-8"):
        await writer.submit(event)
    for cdr in trace_cdrs("concurrent-8"):
        await writer.store_cdr(cdr)
    await writer.wait_idle()
    summary = await run_sync(pool, BuiltinConnector(), PATTERN, since=None, region="US")
    assert (summary.checked, summary.backfilled) == (8, 0)
    assert await pool.fetchval("SELECT count(*) FROM call_records WHERE inferred <> '{}'") == 0


async def test_sync_resends_what_the_crm_never_acknowledged(
    pool: asyncpg.Pool[Any], writer: RecordWriter
) -> None:
    for event in ended_events("concurrent-8"):
        await writer.submit(event)
    await writer.wait_idle()
    await pool.execute(
        "UPDATE call_outbox SET state = 'dead', attempts = 5"
        " WHERE call_id IN ('1795464278.34', '1795464278.36')"
    )
    await pool.execute("UPDATE call_outbox SET state = 'delivered' WHERE state = 'pending'")
    crm = CrmServer()
    await crm.start()
    from bridge.config import build_config
    from bridge.connectors import RestConnector

    config = build_config(
        {
            "crm": {
                "connector": "rest",
                "lookup_url": f"{crm.url}/customers?phone={{phone}}",
                "records_url": f"{crm.url}/calls/{{call_id}}",
                "auth_header": f"Authorization: {TOKEN}",
            }
        },
        {},
        runtime=False,
    )
    connector = RestConnector(config.crm, retries=0)
    await connector.start()
    try:
        summary = await run_sync(pool, connector, PATTERN, since=None, region="US")
        crm.always_fail = True
        await pool.execute("UPDATE call_outbox SET state = 'pending'")
        failing = await run_sync(pool, connector, PATTERN, since=None, max_attempts=1, region="US")
    finally:
        await connector.stop()
        await crm.close()
    assert (summary.resent, summary.delivered, summary.dead_lettered) == (2, 2, 0)
    assert set(crm.accepted) == {"1795464278.34", "1795464278.36"}
    assert (failing.resent, failing.delivered, failing.dead_lettered) == (8, 0, 8)
    assert await pool.fetchval("SELECT count(*) FROM call_dead_letters") == 8


async def _cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_sync_run_command_prints_a_summary_and_exits_zero(
    pool: asyncpg.Pool[Any], writer: RecordWriter, database_url: str, tmp_path: Path
) -> None:
    for cdr in trace_cdrs("regular-answered"):
        await writer.store_cdr(cdr)
    await writer.wait_idle()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")} | {
        "CRM_BRIDGE_DATABASE_URL": database_url,
        "CRM_BRIDGE_CONFIG": str(tmp_path / "none.toml"),
    }
    (tmp_path / "none.toml").write_text("")
    code, out, err = await _cli("sync", "run", "--since", "3650d", env=env)
    assert code == 0, err
    assert "checked 1, backfilled 1, resent 1 (delivered 1), dead-lettered 0" in out
    code, _, err = await _cli("sync", "run", "--since", "yesterday-ish", env=env)
    assert code == 2 and "--since" in err


async def test_a_call_closed_after_max_call_s_is_rebuilt_from_its_cdrs(
    pool: asyncpg.Pool[Any], writer: RecordWriter
) -> None:
    """Its Hangups never reached the bridge, so the tracker closed it after `max_call_s`
    with what it knew (ended_at inferred); the PBX's Cdrs replace that record, once."""
    async with pool.acquire() as conn:
        await seed_crm(conn)
        await seed_decisions(conn, "regular-answered")
    frames = AmiParser().feed((TRACES / "regular-answered" / "ami.log").read_bytes())
    first_hangup = next(i for i, f in enumerate(frames) if f.event == "Hangup")
    tracker = CallTracker(PATTERN, max_call_s=60)
    replay_frames(frames[:first_hangup], tracker, flush=False)
    (closed,) = tracker.tick(datetime(2026, 1, 1, 0, 5, tzinfo=UTC))
    assert isinstance(closed, CallEnded) and "ended_at" in closed.summary.inferred
    await writer.submit(closed)
    for cdr in trace_cdrs("regular-answered"):
        await writer.store_cdr(cdr)
    await writer.wait_idle()
    provisional = await pool.fetchrow("SELECT ended_at, talk_s FROM call_records")
    assert provisional["ended_at"] == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)

    summary = await run_sync(pool, BuiltinConnector(), PATTERN, since=None, region="US")
    assert (summary.checked, summary.backfilled) == (1, 1)
    row = await pool.fetchrow("SELECT * FROM call_records")
    assert row["call_id"] == closed.call_id and row["ended_at"] != provisional["ended_at"]
    assert (row["outcome"], row["talk_s"]) == ("answered", 2)
    assert [(a["agent"], a["talk_s"]) for a in row["agents"]] == [("ann", 2)]
    assert set(INFERRED_FROM_CDR) <= set(row["inferred"])
    again = await run_sync(pool, BuiltinConnector(), PATTERN, since=None, region="US")
    assert (again.checked, again.backfilled) == (1, 0)
