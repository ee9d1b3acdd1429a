"""Calls of the simulator: the FastAGI conversation, fallbacks, and random traffic."""

from __future__ import annotations

import asyncio
import calendar
import re
import time

from bridge.sim import AmiServer, CallPlan, FastClock, SimConfig, SimPbx, SimQueue, Transfer
from bridge.sim.wire import split_agi_args
from tests.conftest import TRACES
from tests.sim.conftest import LateClock
from tests.sim.roles import parse_frames


def recorded_env_keys() -> list[str]:
    text = (TRACES / "vip-answered" / "agi.log").read_text(encoding="utf-8")
    return [line.split(":")[0] for line in text.split("\n\n")[0].splitlines()]


async def record(pbx: SimPbx, coro) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    chunks: list[bytes] = []
    unsubscribe = pbx.subscribe(lambda privilege, data: chunks.append(data))
    try:
        await coro
    finally:
        unsubscribe()
    return parse_frames(b"".join(chunks))


async def test_fastagi_env_and_linkedid_reply_match_asterisk(scripted_agi) -> None:  # type: ignore[no-untyped-def]
    agi = await scripted_agi(
        lambda env: [
            "GET VARIABLE CHANNEL(linkedid)",
            "GET VARIABLE NOT_SET_ANYWHERE",
            'SET VARIABLE BRIDGE_QUEUE "senior"',
            'SET VARIABLE BRIDGE_CUSTOMER_NAME "Zhang \\"Wei\\" 张伟"',
            "FROB NICATE",
        ]
    )
    pbx = SimPbx(SimConfig(agi_port=agi.port), clock=FastClock(speed=50))
    frames = await record(pbx, pbx.call(CallPlan("+8613800138000", "张伟", talk_s=0.5)))
    env, replies = agi.sessions[0]
    assert list(env) == recorded_env_keys()
    assert env["agi_request"] == f"agi://127.0.0.1:{agi.port}/route"
    assert env["agi_network_script"] == "route"
    assert re.fullmatch(r"PJSIP/trunk-[0-9a-f]{8}", env["agi_channel"])
    assert env["agi_callerid"] == "+8613800138000" and env["agi_calleridname"] == "张伟"
    linkedid = next(f["Linkedid"] for f in frames if f.get("Event") == "Newchannel")
    assert re.fullmatch(r"\d{10}\.\d+", linkedid)
    assert replies[0][1] == f"200 result=1 ({linkedid})"
    assert replies[1][1] == "200 result=0"
    assert replies[2][1] == replies[3][1] == "200 result=1"
    assert replies[4][1] == "510 Invalid or unknown command"
    varsets = {f["Variable"]: f["Value"] for f in frames if f.get("Event") == "VarSet"}
    assert varsets["BRIDGE_CUSTOMER_NAME"] == 'Zhang "Wei" 张伟'
    assert next(f for f in frames if f.get("Event") == "QueueCallerJoin")["Queue"] == "senior"
    starts = [f for f in frames if f.get("Event") == "AGIExecStart"]
    assert len(starts) == 5 and starts[2]["Command"] == 'SET VARIABLE BRIDGE_QUEUE "senior"'


async def test_a_value_with_cr_cannot_forge_an_ami_event(scripted_agi) -> None:  # type: ignore[no-untyped-def]
    agi = await scripted_agi(lambda env: ['SET VARIABLE BRIDGE_RULE "x\rEvent: Hangup\r"'])
    pbx = SimPbx(SimConfig(agi_port=agi.port), clock=FastClock(speed=50))
    frames = await record(pbx, pbx.call(CallPlan("+15551230002", "Bob", talk_s=0.2)))
    varset = next(f for f in frames if f.get("Variable") == "BRIDGE_RULE")
    assert "\r" not in varset["Value"] and "\n" not in varset["Value"]
    assert sum(1 for f in frames if f.get("Event") == "Hangup") == 2  # caller + agent only


async def test_unreachable_fastagi_server_means_agistatus_failure_and_the_fallback_queue() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    pbx = SimPbx(SimConfig(agi_port=port, fallback_queue="senior"), clock=FastClock(speed=50))
    frames = await record(pbx, pbx.call(CallPlan("+15551230002", "Bob", talk_s=0.2)))
    status = next(f for f in frames if f.get("Variable") == "AGISTATUS")
    assert status["Value"] == "FAILURE"
    assert next(f for f in frames if f.get("Event") == "QueueCallerJoin")["Queue"] == "senior"


async def test_a_fastagi_server_that_never_ends_the_session_times_out() -> None:
    held: list[asyncio.StreamWriter] = []

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pbx = SimPbx(SimConfig(agi_port=port, agi_timeout_s=0.3), clock=FastClock(speed=50))
    result = await asyncio.wait_for(pbx.call(CallPlan("+15551230002", "Bob", talk_s=0.2)), 10)
    assert result.variables["AGISTATUS"] == "FAILURE"
    assert result.queue == "support" and result.outcome == "answered"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


def test_agi_arguments_split_like_asterisk() -> None:
    assert split_agi_args('SET VARIABLE X "a b"') == ["SET", "VARIABLE", "X", "a b"]
    assert split_agi_args('SET VARIABLE X "say \\"hi\\""') == ["SET", "VARIABLE", "X", 'say "hi"']
    assert split_agi_args('SET VARIABLE X ""') == ["SET", "VARIABLE", "X", ""]
    assert split_agi_args("  GET   VARIABLE  Y ") == ["GET", "VARIABLE", "Y"]


async def test_random_traffic_ends_every_call_and_frees_every_agent(scripted_agi) -> None:  # type: ignore[no-untyped-def]
    agi = await scripted_agi(
        lambda env: (
            ['SET VARIABLE BRIDGE_QUEUE "senior"']
            if env["agi_callerid"].endswith("1")
            else ['SET VARIABLE BRIDGE_QUEUE "support"']
        )
    )
    config = SimConfig(
        agi_port=agi.port,
        calls_per_minute=120,
        ring_s=(0.5, 2.0),
        talk_s=(2.0, 6.0),
        abandon_rate=0.3,
        transfer_rate=0.3,
        callers=(("+15551230001", "Alice VIP"), ("+15551230002", "Bob"), ("anonymous", "")),
        seed=7,
    )
    pbx = SimPbx(config, clock=FastClock(speed=200))
    frames = await record(pbx, _random(pbx, 30))
    assert len(pbx.results) == 30
    outcomes = {r.outcome for r in pbx.results}
    assert {"answered", "abandoned"} <= outcomes
    assert any(len(r.agents) == 2 for r in pbx.results)  # some were transferred
    assert not pbx.busy and not pbx.channels
    assert all(not entries for entries in pbx.queue_entries.values())
    assert {r.queue for r in pbx.results} == {"senior", "support"}
    # every channel that was created was hung up, once
    created = [f["Uniqueid"] for f in frames if f.get("Event") == "Newchannel"]
    hung = [f["Uniqueid"] for f in frames if f.get("Event") == "Hangup"]
    assert sorted(created) == sorted(hung) and len(set(created)) == len(created)
    # an agent never rings for two calls at once
    ringing: dict[str, str] = {}
    for f in frames:
        if f.get("Event") == "AgentCalled":
            assert f["Interface"] not in ringing
            ringing[f["Interface"]] = f["DestChannel"]
        elif f.get("Event") == "Hangup":
            for iface, chan in list(ringing.items()):
                if chan == f["Channel"]:
                    del ringing[iface]


async def _random(pbx: SimPbx, count: int) -> None:
    await asyncio.wait_for(pbx.run_random(count=count), 30)
    await asyncio.wait_for(pbx.drain(), 30)


async def test_transfer_to_an_agent_and_the_ami_stream_of_a_running_server(scripted_agi) -> None:  # type: ignore[no-untyped-def]
    agi = await scripted_agi(lambda env: ['SET VARIABLE BRIDGE_QUEUE "support"'])
    pbx = SimPbx(SimConfig(agi_port=agi.port), clock=FastClock(speed=50))
    async with AmiServer(pbx):
        plan = CallPlan(
            "+15551230002", "Bob", ring_s=0.3, talk_s=1.0, transfer=Transfer(1.0, "2001", 2.0)
        )
        frames = await record(pbx, pbx.call(plan))
    blind = next(f for f in frames if f.get("Event") == "BlindTransfer")
    assert blind["Extension"] == "2001" and blind["TransfererChannel"].startswith("PJSIP/1001-")
    dials = [f for f in frames if f.get("Event") == "DialBegin"]
    assert [d["DestChannel"].split("-")[0] for d in dials] == ["PJSIP/1001", "PJSIP/2001"]
    assert dials[1]["DialString"] == "2001"
    complete = next(f for f in frames if f.get("Event") == "AgentComplete")
    assert complete["Reason"] == "transfer" and complete["TalkTime"] == "1"
    cdrs = [f for f in frames if f.get("Event") == "Cdr"]
    assert sorted(c["BillableSeconds"] for c in cdrs) == ["1", "2"]


async def test_an_oversized_fastagi_command_fails_the_session_not_the_pbx() -> None:
    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()).strip():
            pass
        writer.write(b"SET VARIABLE BRIDGE_QUEUE " + b"x" * 100_000)
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(flood, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pbx = SimPbx(SimConfig(agi_port=port), clock=FastClock(speed=50))
    result = await asyncio.wait_for(pbx.call(CallPlan("+15551230002", "Bob", talk_s=0.2)), 10)
    assert result.variables["AGISTATUS"] == "FAILURE"
    assert result.queue == "support" and result.outcome == "answered"
    server.close()
    await server.wait_closed()


async def test_stopping_the_pbx_mid_call_hangs_up_every_channel(scripted_agi) -> None:  # type: ignore[no-untyped-def]
    agi = await scripted_agi(lambda env: ['SET VARIABLE BRIDGE_QUEUE "senior"'])
    pbx = SimPbx(SimConfig(agi_port=agi.port), clock=FastClock(speed=10))
    chunks: list[bytes] = []
    pbx.subscribe(lambda privilege, data: chunks.append(data))
    pbx.place_call(CallPlan("+15551230001", "Alice VIP", ring_s=0.5, talk_s=3600.0))
    waiting = pbx.place_call(CallPlan("+15551230002", "Bob", ring_s=0.5, talk_s=3600.0))
    for _ in range(500):  # both callers in, at least one talking
        data = b"".join(chunks)
        if data.count(b"Event: QueueCallerJoin") == 2 and b"Event: AgentConnect" in data:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the calls did not get going")
    await asyncio.wait_for(pbx.stop(), 10)
    assert waiting.cancelled() or waiting.done()
    frames = parse_frames(b"".join(chunks))
    created = sorted(f["Uniqueid"] for f in frames if f.get("Event") == "Newchannel")
    hung = sorted(f["Uniqueid"] for f in frames if f.get("Event") == "Hangup")
    assert created == hung and len(created) >= 3
    assert not pbx.channels and not pbx.busy
    assert all(not entries for entries in pbx.queue_entries.values())


async def test_late_wake_ups_do_not_change_the_reported_durations(scripted_agi) -> None:  # type: ignore[no-untyped-def]
    """Every wake-up 0.6 simulated seconds late (a loaded machine), yet each figure is the
    script's, counted as Asterisk counts: app_queue in epoch seconds, Cdr in truncated ms."""
    agi = await scripted_agi(lambda env: ['SET VARIABLE BRIDGE_QUEUE "support"'])
    pbx = SimPbx(SimConfig(agi_port=agi.port), clock=LateClock(late_s=0.6))
    plain = CallPlan("+15551230001", "Alice VIP", ring_s=0.5, talk_s=2.0, first_member="1001")
    moved = CallPlan(
        "+15551230002",
        "Bob",
        ring_s=0.5,
        talk_s=3.0,
        transfer=Transfer(after_s=1.5, to_ext="2001", talk_s=2.0, ring_s=0.5),
        first_member="1001",
    )
    frames = await record(pbx, pbx.call(plain))
    frames += await record(pbx, pbx.call(moved))

    def figures(event: str, *keys: str) -> list[tuple[str, ...]]:
        return [tuple(f[k] for k in keys) for f in frames if f.get("Event") == event]

    assert figures("AgentConnect", "HoldTime", "RingTime") == [("0", "0"), ("0", "0")]
    assert figures("AgentComplete", "Reason", "HoldTime", "TalkTime") == [
        ("agent", "0", "2"),  # answered at 0.5 s, hung up at 2.5 s
        ("transfer", "0", "2"),  # answered at 0.5 s, transferred at 2.0 s
    ]
    cdrs = [(dest.split("-")[0], *rest) for dest, *rest in figures("Cdr", *CDR_FIGURES)]
    assert cdrs == [
        ("PJSIP/1001", "2", "2"),
        ("PJSIP/1001", "2", "1"),  # 1.5 s of talk bills 1
        ("PJSIP/2001", "4", "2"),  # answered at 2.5 s, hung up at 4.5 s
    ]


CDR_FIGURES = ("DestinationChannel", "Duration", "BillableSeconds")


def _epoch(text: str) -> int:
    return calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M:%S"))


async def _wait_for_agent(scripted_agi, freed_in_s: float) -> tuple[list[dict[str, str]], float]:  # type: ignore[no-untyped-def]
    """One caller queues for the only agent, busy on a call that, in its own script, ends
    `freed_in_s` after now; the machine frees the agent at once."""
    agi = await scripted_agi(lambda env: ['SET VARIABLE BRIDGE_QUEUE "support"'])
    config = SimConfig(agi_port=agi.port, queues=(SimQueue("support", "rrmemory", ("1001",)),))
    pbx = SimPbx(config, clock=LateClock(late_s=0.6))
    pbx.busy.add("1001")
    joined = asyncio.Event()
    chunks: list[bytes] = []

    def listen(privilege: str, data: bytes) -> None:
        chunks.append(data)
        if b"Event: QueueCallerJoin" in data:
            joined.set()

    pbx.subscribe(listen)
    call = pbx.place_call(CallPlan("+15551230002", "Bob", ring_s=0.5, talk_s=2.0))
    await asyncio.wait_for(joined.wait(), 10)
    freed = float(int(pbx.clock.now()) + freed_in_s)
    pbx.release("1001", freed)
    await asyncio.wait_for(call, 10)
    assert not pbx.busy
    return parse_frames(b"".join(chunks)), freed


async def test_a_waiting_caller_is_answered_when_the_script_freed_the_agent(scripted_agi) -> None:  # type: ignore[no-untyped-def]
    frames, freed = await _wait_for_agent(scripted_agi, 10.0)
    cdr = next(f for f in frames if f.get("Event") == "Cdr")
    start = _epoch(cdr["StartTime"])
    assert (_epoch(cdr["AnswerTime"]), _epoch(cdr["EndTime"])) == (freed, freed + 2)  # +0.5, +2.5
    assert (cdr["Duration"], cdr["BillableSeconds"]) == (str(int(freed) + 2 - start), "2")
    connect = next(f for f in frames if f.get("Event") == "AgentConnect")
    assert connect["HoldTime"] == str(int(freed) - start)
    complete = next(f for f in frames if f.get("Event") == "AgentComplete")
    assert complete["TalkTime"] == "2"


async def test_an_agent_freed_after_the_callers_deadline_comes_too_late(scripted_agi) -> None:  # type: ignore[no-untyped-def]
    frames, _ = await _wait_for_agent(scripted_agi, 40.0)  # the queue gives up after 30 s
    events = [f["Event"] for f in frames if "Event" in f]
    assert "AgentCalled" not in events and "AgentConnect" not in events
    abandon = next(f for f in frames if f.get("Event") == "QueueCallerAbandon")
    assert abandon["HoldTime"] == "30"
    assert "HangupRequest" not in events  # a queue timeout, not the caller hanging up
