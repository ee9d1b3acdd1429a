"""The simulator's Originate: refused as manager.c refuses it, and a click-to-call played
with the events the recorded `click-to-dial-pbx` trace shows for each step; the bridge's own
click-to-call, answered or not by the far end, has the shape of its recordings on Asterisk 22
(`click-to-call`, `click-to-call-unanswered`)."""

from __future__ import annotations

import pytest

from bridge.ami.protocol import AmiParser
from bridge.sim import AmiServer, AmiUser, FastClock, SimConfig, SimPbx
from bridge.sim.originate import OriginateTiming
from tests.conftest import TRACES
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
        ("DialBegin", "", ""),  # the Originate's own dial of the device
        ("Newstate", "PJSIP/1001", "Ringing"),
        ("Newstate", "PJSIP/1001", "Up"),
        ("OriginateResponse", "PJSIP/1001", ""),
        ("DialEnd", "", ""),
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
    dial = next(m for m in seen if m["Event"] == "DialBegin" and "Channel" in m)
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
        assert not (message.get("Event") == "DialBegin" and "Channel" in message)  # no trunk
    assert message["Response"] == "Failure" and message["Reason"] == "3"
    assert "PJSIP/1002" not in {c.split("-")[0] for c in ami.pbx.channels}
    await client.close()


def role(name: str) -> str | None:
    """The party a channel stands for, Local halves (the lab) or PJSIP (the simulator):
    the agent's device, the trunk toward the customer, or nobody (a Local `;2` half)."""
    if name.startswith("PJSIP/1001-") or (
        name.startswith("Local/1001@phones-") and name.endswith(";1")
    ):
        return "agent"
    if name.startswith("PJSIP/trunk-") or ("@outside-" in name and name.endswith(";1")):
        return "trunk"
    return None


def shape(frames: list[dict[str, str]]) -> tuple[list[tuple[str, ...]], list[str], list[str]]:
    """What a consumer of the stream sees, per party: the ordered dial steps (without the
    OriginateResponse, whose place against the trunk's dial is a race between threads in
    Asterisk, and the hangups, whose order is who put the phone down), the hangups as a
    sorted list, and the agent's Cdrs toward the trunk."""
    steps: list[tuple[str, ...]] = []
    hangups: list[str] = []
    cdrs: list[str] = []
    for f in frames:
        event, who = f.get("Event", ""), role(f.get("Channel", ""))
        if event in {"DialBegin", "DialState", "DialEnd"}:
            dest = role(f.get("DestChannel", ""))
            if dest is not None:
                steps.append((event, who or "-", dest, f.get("DialStatus", "")))
        elif event in {"Newchannel", "MixMonitorStart", "BridgeEnter"} and who is not None:
            steps.append((event, who))
        elif event == "Hangup" and who is not None:
            hangups.append(who)
        elif event == "Cdr" and who == "agent" and role(f.get("DestinationChannel", "")):
            cdrs.append(f["Disposition"])
    return steps, sorted(hangups), cdrs


def recorded(scenario: str) -> list[dict[str, str]]:
    data = (TRACES / scenario / "ami.log").read_bytes()
    return [dict(frame.items) for frame in AmiParser().feed(data)]


async def simulated(ami: AmiServer, timing: OriginateTiming) -> list[dict[str, str]]:
    """The bridge's own click-to-call (scenario.json's action) played by the simulator, up to
    the agent's Cdr toward the trunk (Asterisk sends it after the last Hangup)."""
    ami.originate_timing = timing
    client = await logged_in(ami, "bridge", "s3cret")
    await client.send(
        Action="Originate", ActionID="crm-bridge-1", Channel="Local/1001@phones",
        Context="crm-outbound", Exten="15551230002", Priority="1", Timeout="30000",
        ChannelId="c2d-428c4c17805c262c", Async="true", CallerID='"Sales" <18005550100>',
    )  # fmt: skip
    assert (await client.message())["Message"] == "Originate successfully queued"
    seen: list[dict[str, str]] = []
    while not (seen and seen[-1].get("Event") == "Cdr" and role(seen[-1]["Channel"]) == "agent"):
        seen.append(await client.message())
    while len([m for m in seen if m.get("Event") == "Hangup"]) < 2:
        seen.append(await client.message())
    await client.close()
    return seen


@pytest.mark.parametrize(
    ("scenario", "timing"),
    [
        ("click-to-call", OriginateTiming(agent_answer_s=0.5, far_ring_s=1, talk_s=1)),
        ("click-to-call-unanswered", OriginateTiming(agent_answer_s=0.5, far_answers=False,
                                                     dial_timeout_s=1)),
    ],
)  # fmt: skip
async def test_the_click_to_call_has_the_shape_of_its_recording(
    ami: AmiServer, scenario: str, timing: OriginateTiming
) -> None:
    real, sim = recorded(scenario), await simulated(ami, timing)
    assert shape(sim) == shape(real)
    # The Originate's own dial names no calling channel, only the device and the dial string.
    own = [m for m in sim if m.get("Event") == "DialBegin" and "Channel" not in m]
    assert [m["DialString"] for m in own] == ["1001@phones"]
    # OriginateResponse has the Context/Exten form, field for field.
    response = [m for m in sim if m.get("Event") == "OriginateResponse"]
    expected = [m for m in real if m.get("Event") == "OriginateResponse"]
    assert [list(m) for m in response] == [list(m) for m in expected]
    assert [(m["Response"], m["Reason"]) for m in response] == [("Success", "4")]


async def test_the_agents_cdr_bills_from_the_agents_answer_like_asterisk(ami: AmiServer) -> None:
    """The record's talk time comes from this Cdr: Asterisk counts the far end's ringing too
    (the recording: answer 07:41:07, end 07:41:09, 2 s for about 1 s with the customer)."""
    sim = await simulated(ami, OriginateTiming(agent_answer_s=1, far_ring_s=3, talk_s=2))
    cdr = next(m for m in sim if m.get("Event") == "Cdr" and role(m["Channel"]) == "agent")
    assert (cdr["Disposition"], cdr["BillableSeconds"]) == ("ANSWERED", "5")
    real = next(
        m for m in recorded("click-to-call")
        if m.get("Event") == "Cdr" and role(m.get("Channel", "")) == "agent"
        and m.get("DestinationChannel")
    )  # fmt: skip
    assert (real["AnswerTime"], real["EndTime"], real["BillableSeconds"]) == (
        "2026-12-02 07:41:07", "2026-12-02 07:41:09", "2",
    )  # fmt: skip
