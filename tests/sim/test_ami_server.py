"""The simulator's AMI server speaks Asterisk's manager protocol on the wire."""

from __future__ import annotations

import asyncio

import pytest

from bridge.sim import AmiServer, AmiUser, CallPlan, FastClock, SimConfig, SimPbx
from tests.sim.conftest import AmiClient

USERS = (
    AmiUser("bridge", "s3cret"),
    AmiUser("readonly", "r3ad", frozenset({"call", "agent", "cdr"})),
)


@pytest.fixture
async def ami(scripted_agi):  # type: ignore[no-untyped-def]
    agi = await scripted_agi(lambda env: ['SET VARIABLE BRIDGE_QUEUE "support"'])
    config = SimConfig(agi_port=agi.port, ami_users=USERS)
    pbx = SimPbx(config, clock=FastClock(speed=20))
    server = AmiServer(pbx)
    await server.start()
    yield server
    await pbx.stop()
    await server.stop()


async def logged_in(server: AmiServer, user: str = "bridge", secret: str = "s3cret") -> AmiClient:  # noqa: S107
    client = await AmiClient.connect(server.port)
    assert await client.reader.readline() == b"Asterisk Call Manager/9.0.0\r\n"
    reply = await client.login(user, secret)
    assert reply == {
        "Response": "Success",
        "ActionID": "login",
        "Message": "Authentication accepted",
    }
    return client


async def test_login_then_fully_booted_then_ping_pong_with_action_id(ami: AmiServer) -> None:
    client = await logged_in(ami)
    assert (await client.message())["Event"] == "FullyBooted"
    await client.send(Action="Ping", ActionID="k-1")
    pong = await client.message()
    assert pong["Response"] == "Success" and pong["Ping"] == "Pong" and pong["ActionID"] == "k-1"
    assert float(pong["Timestamp"]) > 0
    await client.send(Action="Logoff", ActionID="bye")
    assert (await client.message())["Response"] == "Goodbye"
    assert await client.reader.read() == b""  # the server closed
    await client.close()


async def test_wrong_secret_is_refused_and_the_session_ends(ami: AmiServer) -> None:
    client = await AmiClient.connect(ami.port)
    await client.reader.readline()
    reply = await client.login("bridge", "wrong")
    assert reply["Response"] == "Error" and reply["Message"] == "Authentication failed"
    assert await asyncio.wait_for(client.reader.read(), 5) == b""
    await client.close()


async def test_actions_before_login_are_denied_and_unknown_ones_answered(ami: AmiServer) -> None:
    client = await AmiClient.connect(ami.port)
    await client.reader.readline()
    await client.send(Action="Ping", ActionID="early")
    assert (await client.message()) == {
        "Response": "Error",
        "ActionID": "early",
        "Message": "Permission denied",
    }
    await client.login("bridge", "s3cret")
    await client.message()  # FullyBooted
    await client.send(Action="Redirect", ActionID="x", Channel="PJSIP/1001")
    assert (await client.message())["Message"] == "Invalid/unknown command"
    await client.close()


async def test_injected_crlf_in_an_action_does_not_smuggle_a_second_action(ami: AmiServer) -> None:
    client = await AmiClient.connect(ami.port)
    await client.reader.readline()
    # one action whose value tries to start another: the blank line is what ends a message
    client.writer.write(b"Action: Ping\r\nActionID: a\r\nX: y\rAction: Logoff\r\n\r\n")
    await client.writer.drain()
    assert (await client.message())["Message"] == "Permission denied"
    await client.close()


async def test_an_oversized_action_drops_the_client_without_hurting_others(ami: AmiServer) -> None:
    other = await logged_in(ami)
    await other.message()
    hostile = await AmiClient.connect(ami.port)
    await hostile.reader.readline()
    hostile.writer.write(b"Action: Ping\r\nX: " + b"A" * 200_000)
    await hostile.writer.drain()
    assert await asyncio.wait_for(hostile.reader.read(), 5) == b""
    await other.send(Action="Ping", ActionID="still")
    assert (await other.message())["Ping"] == "Pong"
    await hostile.close()
    await other.close()


async def test_list_actions_during_a_call(ami: AmiServer) -> None:
    client = await logged_in(ami)
    await client.message()
    plan = CallPlan("+15551230002", "Bob", ring_s=30.0, talk_s=1.0)
    ami.pbx.place_call(plan)
    while (await client.message()).get("Event") != "AgentCalled":
        pass
    await client.send(Action="CoreShowChannels", ActionID="c1")
    head = await client.message()
    while head.get("Response") != "Success":
        head = await client.message()
    assert head["EventList"] == "start" and head["ActionID"] == "c1"
    channels = []
    while True:
        item = await client.message()
        if item.get("ActionID") != "c1":
            continue
        if item["Event"] == "CoreShowChannelsComplete":
            break
        assert item["Event"] == "CoreShowChannel"
        channels.append(item)
    assert item["EventList"] == "Complete" and int(item["ListItems"]) == len(channels) == 2
    assert {c["Channel"].split("-")[0] for c in channels} == {"PJSIP/trunk", "PJSIP/1001"}
    assert len({c["Linkedid"] for c in channels}) == 1

    await client.send(Action="QueueStatus", ActionID="q1", Queue="support")
    kinds = []
    while True:
        item = await client.message()
        if item.get("ActionID") != "q1":
            continue
        if item.get("Event") == "QueueStatusComplete":
            break
        kinds.append(item.get("Event") or item.get("EventList"))
        if item.get("Event") == "QueueEntry":
            assert item["Channel"].startswith("PJSIP/trunk-") and item["Position"] == "1"
        if item.get("Event") == "QueueMember" and item["Location"] == "PJSIP/1001":
            assert (item["InCall"], item["Status"]) == ("0", "2")  # ringing: in use, no call
    assert kinds == ["start", "QueueParams", "QueueMember", "QueueMember", "QueueEntry"]
    assert int(item["ListItems"]) == 4
    await client.close()


async def test_a_least_privilege_user_gets_no_dialplan_or_agi_events(ami: AmiServer) -> None:
    full = await logged_in(ami)
    limited = await logged_in(ami, "readonly", "r3ad")
    await ami.pbx.call(CallPlan("+15551230002", "Bob", ring_s=0.2, talk_s=0.5))
    await full.send(Action="Ping", ActionID="end")
    await limited.send(Action="Ping", ActionID="end")

    async def collect(client: AmiClient) -> list[dict[str, str]]:
        out = []
        while (m := await client.message()).get("ActionID") != "end":
            out.append(m)
        return out

    full_events, limited_events = await collect(full), await collect(limited)
    privileges = {m["Privilege"].split(",")[0] for m in limited_events if "Privilege" in m}
    assert privileges == {"call", "agent", "cdr"}
    assert {"dialplan", "agi"} <= {
        m["Privilege"].split(",")[0] for m in full_events if "Privilege" in m
    }
    assert not any(m.get("Event") in {"VarSet", "Newexten", "AGIExecStart"} for m in limited_events)
    await full.close()
    await limited.close()


async def test_a_client_that_never_reads_is_cut_off_not_buffered_forever(scripted_agi) -> None:  # type: ignore[no-untyped-def]
    agi = await scripted_agi(lambda env: [])
    pbx = SimPbx(SimConfig(agi_port=agi.port, ami_users=USERS), clock=FastClock(speed=50))
    async with AmiServer(pbx, outbox_limit=50) as server:
        client = await AmiClient.connect(server.port)
        await client.reader.readline()
        await client.login("bridge", "s3cret")
        transport = client.writer.transport
        transport.pause_reading()
        for _ in range(300):
            pbx.emit([("Event", "Test"), ("Privilege", "call,all"), ("Data", "x" * 2000)])
        await asyncio.sleep(0)
        for _ in range(100):
            if not server.sessions:
                break
            await asyncio.sleep(0.01)
        assert not server.sessions
        await client.close()
