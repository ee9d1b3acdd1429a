"""The simulator's AMI stream for each recorded call has the recording's shape.

Each scenario runs over real sockets: the simulator's FastAGI client asks a scripted FastAGI
server (which sets BRIDGE_QUEUE like the recording server did), and its AMI server streams
the events to a logged-in client. Compared with tests/fixtures/asterisk-traces: per channel
role (caller, agent legs, Local halves) the sequence of the events the bridge relies on with
their key fields, the Cdr dispositions per role, and the header names of each event type.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter

import pytest

from bridge.sim import AmiServer, AmiUser, FastClock, SimPbx, lab_config
from tests.conftest import TRACES
from tests.sim.conftest import AmiClient
from tests.sim.roles import cdr_sets, header_names, parse_frames, role_sequences

SINGLE = [
    "regular-answered",
    "vip-answered",
    "vip-answered-least-privilege",
    "unicode-name",
    "unknown-caller",
    "anonymous",
    "abandoned",
    "blind-transfer",
]
READONLY = frozenset({"call", "agent", "cdr"})


def recorded_queue(name: str) -> str:
    return str(json.loads((TRACES / name / "scenario.json").read_text())["queue"])


async def simulate(name: str, technology: str, scripted_agi) -> tuple[bytes, list]:  # type: ignore[no-untyped-def]
    queue = recorded_queue(name)
    agi = await scripted_agi(lambda env: [f'SET VARIABLE BRIDGE_QUEUE "{queue}"'])
    users = (AmiUser("bridge", "s3cret"), AmiUser("readonly", "r3ad", READONLY))
    config = lab_config(technology=technology, agi_port=agi.port, ami_users=users)
    pbx = SimPbx(config, clock=FastClock(speed=50))
    least = name.endswith("least-privilege")
    async with AmiServer(pbx) as ami:
        client = await AmiClient.connect(ami.port)
        assert (await client.reader.readline()) == b"Asterisk Call Manager/9.0.0\r\n"
        reply = await client.login(*(("readonly", "r3ad") if least else ("bridge", "s3cret")))
        assert reply["Response"] == "Success"
        results = await asyncio.wait_for(pbx.run_scenario(name), 20)
        await client.send(Action="Logoff", ActionID="bye")
        data = await asyncio.wait_for(client.reader.read(), 10)
        await client.close()
    return data, results


def _only(frames: list[dict[str, str]]) -> list[dict[str, str]]:
    # drop the lab driver's own traffic: responses and its OriginateResponse, login noise
    return [
        f for f in frames if "Event" in f and f["Event"] not in {"FullyBooted", "OriginateResponse"}
    ]


@pytest.mark.parametrize("name", SINGLE)
async def test_local_stream_matches_the_recording(name: str, scripted_agi) -> None:  # type: ignore[no-untyped-def]
    data, results = await simulate(name, "Local", scripted_agi)
    sim = _only(parse_frames(data))
    trace = _only(parse_frames((TRACES / name / "ami.log").read_bytes()))

    assert role_sequences(sim) == role_sequences(trace)

    sim_cdr, trace_cdr = cdr_sets(sim), cdr_sets(trace)
    assert sim_cdr.keys() == trace_cdr.keys()
    for role in trace_cdr:
        assert sorted(d for d, _ in sim_cdr[role].elements()) == sorted(
            d for d, _ in trace_cdr[role].elements()
        ), role
    assert sim_cdr["caller"] == trace_cdr["caller"]  # BillableSeconds = talk time

    sim_headers, trace_headers = header_names(sim), header_names(trace)
    assert sim_headers.keys() == trace_headers.keys()
    for event, names in trace_headers.items():
        assert sim_headers[event] == names, event

    assert [r.queue for r in results] == [recorded_queue(name)]


@pytest.mark.parametrize("name", SINGLE)
async def test_pjsip_stream_has_the_recorded_shape_with_one_channel_per_party(
    name: str, scripted_agi
) -> None:  # type: ignore[no-untyped-def]
    data, _ = await simulate(name, "PJSIP", scripted_agi)
    sim = _only(parse_frames(data))
    trace = _only(parse_frames((TRACES / name / "ami.log").read_bytes()))
    channels = {f.get("Channel", "") for f in sim}
    assert any(re.fullmatch(r"PJSIP/trunk-[0-9a-f]{8}", c) for c in channels)
    assert any(re.fullmatch(r"PJSIP/[12]00[12]-[0-9a-f]{8}", c) for c in channels)
    assert not any(c.startswith("Local/") for c in channels)

    def pjsip(seq: dict[str, list[tuple[str, ...]]]) -> dict[str, list[tuple[str, ...]]]:
        out = {}
        for role, items in seq.items():
            if role == "origin" or role.startswith("phone:"):
                continue
            out[role] = [
                tuple(
                    re.sub(r"Interface=Local/(\d+)@phones/n", r"Interface=PJSIP/\1", x) for x in it
                )
                for it in items
            ]
        # The lab's driver hung up its Local caller (cause 0); a trunk caller who hangs up
        # arrives as Normal Clearing.
        out["caller"] = [
            ("Hangup", "Cause=16", "Cause-txt=Normal Clearing", "ChannelStateDesc=Up")
            if it[0] == "Hangup"
            else it
            for it in out["caller"]
        ]
        return out

    assert role_sequences(sim) == pjsip(role_sequences(trace))
    agent_called = next(f for f in sim if f["Event"] == "AgentCalled")
    assert re.fullmatch(r"PJSIP/\d{4}", agent_called["Interface"])
    assert re.fullmatch(r"PJSIP/\d{4}-[0-9a-f]{8}", agent_called["DestChannel"])


async def test_concurrent_calls_wait_for_free_agents_like_the_recording(scripted_agi) -> None:  # type: ignore[no-untyped-def]
    data, results = await simulate("concurrent-8", "Local", scripted_agi)
    sim = _only(parse_frames(data))
    trace = _only(parse_frames((TRACES / "concurrent-8" / "ami.log").read_bytes()))

    def per_call(frames: list[dict[str, str]]) -> Counter[str]:
        counts: Counter[str] = Counter()
        for f in frames:
            if f["Event"] in {
                "QueueCallerJoin",
                "AgentConnect",
                "AgentComplete",
                "QueueCallerLeave",
            }:
                counts[f["Event"]] += 1
        return counts

    assert (
        per_call(sim)
        == per_call(trace)
        == Counter(
            {"QueueCallerJoin": 8, "AgentConnect": 8, "AgentComplete": 8, "QueueCallerLeave": 8}
        )
    )
    assert len({f["Linkedid"] for f in sim if f["Event"] == "QueueCallerJoin"}) == 8
    assert sorted(r.outcome for r in results) == ["answered"] * 8
    # at most two callers talk at once: one per support agent
    talking = peak = 0
    for f in sim:
        if f["Event"] == "AgentConnect":
            talking += 1
            peak = max(peak, talking)
        elif f["Event"] == "AgentComplete":
            talking -= 1
    assert peak == 2
