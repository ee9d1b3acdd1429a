"""The simulator's Originate: refused as manager.c refuses it, and a click-to-call played
with the events the recorded `click-to-dial-pbx` trace shows for each step."""

from __future__ import annotations

import pytest

from bridge.sim import AmiServer, AmiUser, FastClock, SimConfig, SimPbx
from tests.sim.conftest import AmiClient

USERS = (
    AmiUser("bridge", "s3cret"),
    AmiUser("calls", "c4lls", write=frozenset({"call", "agent"})),
    AmiUser("dialer", "d1al", write=frozenset({"call", "originate"})),
)
SECRETS = {"bridge": "s3cret", "calls": "c4lls", "dialer": "d1al"}


@pytest.fixture
async def ami():  # type: ignore[no-untyped-def]
    pbx = SimPbx(SimConfig(ami_users=USERS), clock=FastClock(speed=50))
    server = AmiServer(pbx)
    await server.start()
    yield server
    await pbx.stop()
    await server.stop()


async def logged_in(server: AmiServer, user: str, secret: str) -> AmiClient:
    client = await AmiClient.connect(server.port)
    await client.reader.readline()
    assert (await client.login(user, secret))["Response"] == "Success"
    assert (await client.message())["Event"] == "FullyBooted"
    return client


@pytest.mark.parametrize(
    ("user", "fields", "message"),
    [
        ("calls", {"Channel": "PJSIP/1001", "Context": "c", "Exten": "1"}, "Permission denied"),
        (
            "dialer",
            {"Channel": "PJSIP/1001", "Application": "System", "Data": "id"},
            "requires the additional System privilege",
        ),
        ("bridge", {"Channel": "PJSIP/1001", "Application": "Playback"}, "not simulated"),
        ("bridge", {"Context": "from-internal", "Exten": "15551230002"}, "Channel not specified"),
        ("bridge", {"Channel": "PJSIP/1001"}, "Context and Exten"),
        ("bridge", {"Channel": "PJSIP/9999", "Context": "c", "Exten": "1"}, "Originate failed"),
    ],
)
async def test_originate_is_refused_like_asterisk_refuses_it(
    ami: AmiServer, user: str, fields: dict[str, str], message: str
) -> None:
    client = await logged_in(ami, user, SECRETS[user])
    await client.send(Action="Originate", ActionID="o-1", **fields)
    reply = await client.message()
    assert reply["Response"] == "Error" and reply["ActionID"] == "o-1"
    assert message in reply["Message"]
    assert ami.pbx.channels == {}
    await client.close()


async def test_a_click_to_call_rings_the_device_then_dials_the_trunk(ami: AmiServer) -> None:
    client = await logged_in(ami, "bridge", "s3cret")
    await client.send(
        Action="Originate",
        ActionID="o-2",
        Channel="PJSIP/1001",
        Context="from-internal",
        Exten="15551230002",
        Priority="1",
        CallerID='"Sales" <18005550100>',
        Timeout="30000",
        ChannelId="c2d-0123456789abcdef",
        Async="true",
    )
    reply = await client.message()
    assert reply == {
        "Response": "Success",
        "ActionID": "o-2",
        "Message": "Originate successfully queued",
    }
    seen: list[dict[str, str]] = []
    while not (
        seen and seen[-1].get("Event") == "Hangup" and seen[-1]["Channel"].startswith("PJSIP/1001")
    ):
        seen.append(await client.message())
    steps = [
        (m["Event"], m.get("Channel", "").split("-")[0], m.get("ChannelStateDesc", ""))
        for m in seen
        if m["Event"] in {"Newchannel", "Newstate", "DialBegin", "DialEnd", "OriginateResponse",
                          "BridgeEnter", "Hangup"}
    ]  # fmt: skip
    assert steps == [
        ("Newchannel", "PJSIP/1001", "Down"),
        ("Newstate", "PJSIP/1001", "Ringing"),
        ("Newstate", "PJSIP/1001", "Up"),
        ("OriginateResponse", "PJSIP/1001", ""),
        ("Newchannel", "PJSIP/trunk", "Down"),
        ("DialBegin", "PJSIP/1001", "Up"),
        ("Newstate", "PJSIP/trunk", "Ringing"),
        ("Newstate", "PJSIP/trunk", "Up"),
        ("DialEnd", "PJSIP/1001", "Up"),
        ("BridgeEnter", "PJSIP/trunk", "Up"),
        ("BridgeEnter", "PJSIP/1001", "Up"),
        ("Hangup", "PJSIP/trunk", "Up"),
        ("Hangup", "PJSIP/1001", "Up"),
    ]
    first = seen[0]
    assert first["Uniqueid"] == first["Linkedid"] == "c2d-0123456789abcdef"
    assert all(m.get("Linkedid", first["Linkedid"]) == first["Linkedid"] for m in seen)
    response = next(m for m in seen if m["Event"] == "OriginateResponse")
    assert response["Response"] == "Success" and response["ActionID"] == "o-2"
    assert response["Reason"] == "4"
    dial = next(m for m in seen if m["Event"] == "DialBegin")
    assert dial["DestExten"] == "15551230002" and dial["CallerIDNum"] == "18005550100"
    await client.close()


async def test_a_device_that_does_not_answer_ends_the_originate_with_a_failure(
    ami: AmiServer,
) -> None:
    client = await logged_in(ami, "bridge", "s3cret")
    await client.send(
        Action="Originate", ActionID="o-3", Channel="PJSIP/1002", Context="from-internal",
        Exten="15551230002", Timeout="500", ChannelId="c2d-00000000000000aa", Async="true",
    )  # fmt: skip
    assert (await client.message())["Message"] == "Originate successfully queued"
    while (message := await client.message()).get("Event") != "OriginateResponse":
        assert message.get("Event") != "DialBegin"
    assert message["Response"] == "Failure" and message["Reason"] == "3"
    assert "PJSIP/1002" not in {c.split("-")[0] for c in ami.pbx.channels}
    await client.close()
