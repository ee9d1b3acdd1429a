"""ARI event decoding: the recorded Asterisk 22 events and hostile text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.ari.protocol import (
    MAX_EVENT_CHARS,
    ApplicationReplaced,
    AriChannel,
    ChannelDestroyed,
    ChannelVarset,
    OtherEvent,
    StasisEnd,
    StasisStart,
    decode_channel_list,
    decode_event,
    decode_variable_reply,
    in_app,
)
from bridge.errors import AriProtocolError


def trace_events(traces: Path) -> list[str]:
    lines = (traces / "ari-vip" / "ari.jsonl").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and "_rest" not in json.loads(line)]


def test_recorded_stasis_start_decodes_caller_did_and_dialplan(traces: Path) -> None:
    event = decode_event(trace_events(traces)[0])
    assert isinstance(event, StasisStart)
    assert event.application == "crm-bridge"
    assert event.args == ()
    assert event.timestamp == "2026-11-23T20:04:49.280+0000"
    assert event.channel == AriChannel(
        id="1795464289.67",
        name="Local/18005550100@inbound-ari-00000021;2",
        state="Up",
        caller_number="+15551230001",
        caller_name="Alice VIP",
        context="inbound-ari",
        exten="18005550100",
        app_name="Stasis",
        app_data="crm-bridge",
    )
    assert in_app(event.channel, "crm-bridge")


def test_recorded_varset_and_stasis_end_decode(traces: Path) -> None:
    _, varset, end = (decode_event(line) for line in trace_events(traces))
    assert isinstance(varset, ChannelVarset)
    assert (varset.variable, varset.value) == ("BRIDGE_QUEUE", "senior")
    assert varset.channel is not None and varset.channel.id == "1795464289.67"
    assert isinstance(end, StasisEnd)
    assert end.channel.id == "1795464289.67"


def test_bytes_are_decoded_as_utf8() -> None:
    event = decode_event(
        json.dumps(
            {
                "type": "StasisStart",
                "application": "crm-bridge",
                "args": [],
                "channel": {"id": "1.1", "caller": {"name": "张伟", "number": "+8613800138000"}},
            },
            ensure_ascii=False,
        ).encode("utf-8")
    )
    assert isinstance(event, StasisStart)
    assert event.channel.caller_name == "张伟"


def test_channel_destroyed_application_replaced_and_unknown_types() -> None:
    destroyed = decode_event(
        '{"type":"ChannelDestroyed","cause":16,"cause_txt":"Normal Clearing",'
        '"channel":{"id":"9.9"},"application":"crm-bridge"}'
    )
    assert destroyed == ChannelDestroyed("crm-bridge", AriChannel(id="9.9"), 16, "Normal Clearing")
    assert decode_event('{"type":"ApplicationReplaced","application":"crm-bridge"}') == (
        ApplicationReplaced("crm-bridge")
    )
    assert decode_event('{"type":"ChannelDtmfReceived","digit":"1"}') == OtherEvent(
        "ChannelDtmfReceived"
    )


def test_linkedid_is_read_when_asterisk_sends_it() -> None:
    event = decode_event('{"type":"StasisStart","args":[],"channel":{"id":"2.2","linkedid":"1.1"}}')
    assert isinstance(event, StasisStart)
    assert event.channel.linkedid == "1.1"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        '{"type": "StasisStart", "channel": {"id": "1.1"',  # truncated
        "[]",
        "42",
        "null",
        '"StasisStart"',
        "{}",  # no type
        '{"type": 7}',
        '{"type": "StasisStart"}',  # no channel
        '{"type": "StasisStart", "channel": "1.1"}',
        '{"type": "StasisStart", "channel": {}}',  # no id
        '{"type": "StasisStart", "channel": {"id": ""}}',
        '{"type": "StasisStart", "channel": {"id": 12}}',
        '{"type": "StasisStart", "channel": {"id": "1", "caller": []}}',
        '{"type": "StasisStart", "channel": {"id": "1", "caller": {"number": 5551}}}',
        '{"type": "StasisStart", "args": "x", "channel": {"id": "1"}}',
        '{"type": "StasisStart", "args": [1], "channel": {"id": "1"}}',
        '{"type": "ChannelDestroyed", "cause": "16", "channel": {"id": "1"}}',
        '{"type": "ChannelDestroyed", "cause": true, "channel": {"id": "1"}}',
        '{"type": "ChannelVarset", "value": "x"}',
        '{"type": "StasisStart", "channel": {"id": "' + "9" * 300 + '"}}',
        "[" * 100_000 + "]" * 100_000,  # nesting bomb
        '{"type": "x", "pad": "' + "a" * MAX_EVENT_CHARS + '"}',
    ],
)
def test_malformed_events_raise_protocol_error(text: str) -> None:
    with pytest.raises(AriProtocolError):
        decode_event(text)


def test_invalid_utf8_bytes_raise_protocol_error() -> None:
    with pytest.raises(AriProtocolError):
        decode_event(b'{"type": "StasisStart", "channel": {"id": "\xff\xfe"}}')


def test_hostile_text_fields_are_kept_verbatim_for_the_caller_to_sanitise() -> None:
    event = decode_event(
        json.dumps(
            {
                "type": "StasisStart",
                "args": [],
                "channel": {
                    "id": "1.1",
                    "caller": {
                        "name": "Eve\r\nAction: Originate\x00'; DROP TABLE x;--",
                        "number": "<script>",
                    },
                },
            }
        )
    )
    assert isinstance(event, StasisStart)
    assert event.channel.caller_name == "Eve\r\nAction: Originate\x00'; DROP TABLE x;--"
    assert event.channel.caller_number == "<script>"


@pytest.mark.parametrize(
    ("app_name", "app_data", "expected"),
    [
        ("Stasis", "crm-bridge", True),
        ("stasis", " crm-bridge ", True),
        ("Stasis", "crm-bridge2", False),
        ("Stasis", "crm-bridge,outbound", False),
        ("Stasis", "other", False),
        ("Queue", "crm-bridge", False),
        ("", "", False),
    ],
)
def test_in_app_matches_only_our_argument_less_stasis(
    app_name: str, app_data: str, expected: bool
) -> None:
    assert (
        in_app(AriChannel(id="1", app_name=app_name, app_data=app_data), "crm-bridge") is expected
    )


def test_channel_list_and_variable_reply() -> None:
    channels, skipped = decode_channel_list(
        '[{"id":"1.1","dialplan":{"app_name":"Stasis","app_data":"crm-bridge"}},{"id":"1.2"},'
        '{"name": "no id"}, 7, {"id": "1.3", "caller": "x"}]'
    )
    assert [c.id for c in channels] == ["1.1", "1.2"]
    assert skipped == 3
    assert decode_variable_reply('{"value": "1795464289.60"}') == "1795464289.60"
    for bad in ('{"values": 1}', "[]", '{"value": 3}', "<html>502</html>"):
        with pytest.raises(AriProtocolError):
            decode_variable_reply(bad)
    for bad_list in ("{}", "null", "[", b"\xff"):
        with pytest.raises(AriProtocolError):
            decode_channel_list(bad_list)


def test_oversized_descriptive_text_is_cut_not_refused() -> None:
    event = decode_event(
        json.dumps(
            {
                "type": "StasisStart",
                "args": [],
                "channel": {"id": "1.1", "caller": {"name": "n" * 10_000, "number": "5" * 9000}},
            }
        )
    )
    assert isinstance(event, StasisStart)
    assert len(event.channel.caller_name) == 4096
    assert len(event.channel.caller_number) == 4096
