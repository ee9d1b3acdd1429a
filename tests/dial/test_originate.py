"""The Originate a click-to-call sends: every field from configuration and the roster, the
number as digits only, no Application or Data, byte for byte."""

from __future__ import annotations

import json

import pytest

from bridge.ami.protocol import AmiParser, encode_action
from bridge.config import build_config
from bridge.dial.originate import new_call_id, originate_fields
from bridge.dial.safety import check_number
from bridge.errors import ConfigError
from tests.conftest import TRACES

CONFIG = build_config(
    {"pbx": {"outbound_context": "from-internal", "outbound_callerid": '"Sales" <18005550100>'}},
    {},
    runtime=False,
)


def test_the_frame_on_the_wire_is_exactly_this() -> None:
    fields = originate_fields(
        CONFIG, device="1001", digits="15551230002", call_id="c2d-0123456789abcdef"
    )
    wire = encode_action("Originate", {**fields, "ActionID": "crm-bridge-7"})
    assert wire == (
        b"Action: Originate\r\n"
        b"Channel: PJSIP/1001\r\n"
        b"Context: from-internal\r\n"
        b"Exten: 15551230002\r\n"
        b"Priority: 1\r\n"
        b"Timeout: 30000\r\n"
        b"ChannelId: c2d-0123456789abcdef\r\n"
        b"Async: true\r\n"
        b'CallerID: "Sales" <18005550100>\r\n'
        b"ActionID: crm-bridge-7\r\n"
        b"\r\n"
    )
    assert not {"Application", "Data", "Variable"} & set(fields)


@pytest.mark.parametrize(
    ("device", "digits"),
    [
        ("1001\r\nApplication: System", "15551230002"),
        ("1001&PJSIP/2001", "15551230002"),
        ("", "15551230002"),
        ("1001", "1555123000\r\n2"),
        ("1001", "1234,Application,System"),
        ("1001", "*97"),
        ("1001", "1" * 21),
    ],
)
def test_a_device_or_number_that_is_not_plain_never_reaches_the_fields(
    device: str, digits: str
) -> None:
    with pytest.raises(ValueError):
        originate_fields(CONFIG, device=device, digits=digits, call_id=new_call_id())


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("agent_channel", "PJSIP/{ext}\r\nApplication: System"),
        ("agent_channel", "PJSIP/{ext}&PJSIP/{ext}"),
        ("agent_channel", "PJSIP/1001"),
        ("agent_channel", "PJSIP/{ext}/{number}"),
        ("outbound_context", "from-internal,s,1"),
        ("outbound_context", ""),
        ("outbound_callerid", "Sales\r\nApplication: System"),
    ],
)
def test_configuration_that_could_smuggle_a_field_is_refused_at_start(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        build_config({"pbx": {key: value}}, {}, runtime=False)
    assert refused.value.key == f"pbx.{key}"


def test_the_agent_channel_template_takes_the_roster_device() -> None:
    config = build_config({"pbx": {"agent_channel": "Local/{ext}@ringagent"}}, {}, runtime=False)
    fields = originate_fields(config, device="1001", digits="15551230002", call_id=new_call_id())
    assert fields["Channel"] == "Local/1001@ringagent"
    assert "CallerID" not in fields  # empty outbound_callerid: the PBX's own


LAB = build_config(
    {
        "pbx": {
            "agent_channel": "Local/{ext}@phones",
            "outbound_context": "crm-outbound",
            "outbound_callerid": '"Sales" <18005550100>',
        }
    },
    {},
    runtime=False,
)


@pytest.mark.parametrize("scenario", ["click-to-call", "click-to-call-unanswered"])
def test_the_recorded_click_to_call_is_what_the_bridge_sends(scenario: str) -> None:
    """The recordings on a real Asterisk 22 were made with originate_fields' own action; the
    PBX named the call after its ChannelId and accepted it at once."""
    facts = json.loads((TRACES / scenario / "scenario.json").read_text())
    sent = facts["originate"]
    digits = check_number("+" + facts["caller"], region="US").digits
    assert originate_fields(LAB, device="1001", digits=digits, call_id=sent["ChannelId"]) == sent
    frames = list(AmiParser().feed((TRACES / scenario / "ami.log").read_bytes()))
    reply = next(f for f in frames if f.get("Response"))
    assert (reply.get("Message"), reply.get("ActionID")) == (
        "Originate successfully queued",
        "crm-bridge-1",
    )
    first = next(f for f in frames if f.get("Event") == "Newchannel")
    assert first.get("Channel", "").startswith("Local/1001@phones-")
    assert first.get("Uniqueid") == first.get("Linkedid") == sent["ChannelId"]
