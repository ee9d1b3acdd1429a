"""What the simulator lists to a bridge that (re)connects mid-call is what a real Asterisk 22
listed at the same moment (tests/fixtures/asterisk-traces/restart): per channel role the
same `CoreShowChannel` headers in the same order, the same Application and data, states,
caller IDs and whether the channel is bridged; the same `QueueStatus` entries and members."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bridge.sim import AmiServer, AmiUser, CallPlan, SimPbx, lab_config
from tests.conftest import TRACES
from tests.sim.conftest import AmiClient, GatedClock
from tests.sim.roles import parse_frames

RESTART = TRACES / "restart"
USERS = (AmiUser("bridge", "s3cret"),)
# The lab's runs (run-support.json, run-senior.json).
RUNS = {
    ".": ("support", CallPlan("+15551230002", "Bob", ring_s=6, talk_s=20, first_member="1001")),
    "senior-ringall": (
        "senior",
        CallPlan("+15551230001", "Alice", ring_s=5, ring_overrides=(("2002", 8),), talk_s=20),
    ),
}
_ROLE = re.compile(r"^Local/(?P<ext>[^@]+)@(?P<ctx>phones|inbound)-[0-9a-f]{8};(?P<half>[12])$")
COMPARED = (
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Context",
    "Exten",
    "Priority",
    "Application",
    "ApplicationData",
)


def role(channel: str) -> str:
    m = _ROLE.match(channel)
    assert m is not None, channel
    if m["ctx"] == "inbound":
        return "caller" if m["half"] == "2" else "origin"
    return f"{'agent' if m['half'] == '1' else 'phone'}:{m['ext']}"


def channels(listing: list[dict[str, str]]) -> dict[str, dict[str, Any]]:
    out = {}
    for item in listing:
        if item.get("Event") != "CoreShowChannel":
            continue
        out[role(item["Channel"])] = {
            "headers": list(item),
            **{k: item[k] for k in COMPARED},
            "bridged": bool(item["BridgeId"]),
        }
    return out


def queue_status(listing: list[dict[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in listing:
        event = item.get("Event")
        if event == "QueueParams":
            out[f"params:{item['Queue']}"] = (list(item), item["Strategy"], item["Calls"])
        elif event == "QueueMember":
            out[f"member:{item['Name']}"] = (
                list(item),
                item["Location"],
                item["InCall"],
                item["Status"],
                item["Paused"],
            )
        elif event == "QueueEntry":
            out[f"entry:{item['Queue']}"] = (
                list(item),
                role(item["Channel"]),
                item["Position"],
                item["CallerIDNum"],
                item["CallerIDName"],
            )
    return out


def recorded(folder: str, kind: str, moment: str) -> list[dict[str, str]]:
    return parse_frames((RESTART / folder / f"{kind}-{moment}.ami.log").read_bytes())


async def listing(client: AmiClient, action: str, done: str) -> list[dict[str, str]]:
    await client.send(Action=action, ActionID="lab-1")
    out = []
    while True:
        item = await client.message()
        if item.get("ActionID") != "lab-1":
            continue
        out.append(item)
        if item.get("Event") == done:
            return out


@pytest.mark.parametrize("folder", list(RUNS))
async def test_listings_mid_call_are_what_asterisk_lists(folder: str, scripted_agi) -> None:  # type: ignore[no-untyped-def]
    queue, plan = RUNS[folder]
    agi = await scripted_agi(lambda env: [f'SET VARIABLE BRIDGE_QUEUE "{queue}"'])
    clock = GatedClock()
    pbx = SimPbx(lab_config(agi_port=agi.port, ami_users=USERS), clock=clock)
    async with AmiServer(pbx) as ami:
        client = await AmiClient.connect(ami.port)
        await client.reader.readline()
        assert (await client.login("bridge", "s3cret"))["Response"] == "Success"
        call = pbx.place_call(plan)
        for moment in ("ringing", "talking"):
            await clock.parked()  # the handsets ring (then talk) until released
            shown = await listing(client, "CoreShowChannels", "CoreShowChannelsComplete")
            expected = channels(recorded(folder, "coreshowchannels", moment))
            assert {"caller", "origin"} < set(expected)  # every role of the call is compared
            assert channels(shown) == expected
            status = await listing(client, "QueueStatus", "QueueStatusComplete")
            assert queue_status(status) == queue_status(recorded(folder, "queuestatus", moment))
            clock.release()
        result = await call
        await client.close()
    assert result is not None and result.outcome == "answered"
    await pbx.stop()
