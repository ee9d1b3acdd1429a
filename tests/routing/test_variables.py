"""A decision as CONTRACT channel variables."""

from __future__ import annotations

import pytest

from bridge.models import Customer, Decision
from bridge.routing.variables import (
    MAX_VALUE_CHARS,
    VARIABLE_NAMES,
    contract_variables,
    plain_text,
    recording_name,
)


def test_known_customer_decision_gives_every_variable_in_order() -> None:
    decision = Decision("senior", 5, "vip", Customer("c1", "Alice Chen", ("vip", "gold")))
    assert contract_variables(decision, "1795464289.60.wav") == [
        ("BRIDGE_QUEUE", "senior"),
        ("BRIDGE_PRIORITY", "5"),
        ("BRIDGE_RULE", "vip"),
        ("BRIDGE_CUSTOMER_ID", "c1"),
        ("BRIDGE_CUSTOMER_NAME", "Alice Chen"),
        ("BRIDGE_TAGS", "vip,gold"),
        ("BRIDGE_DEGRADED", "0"),
        ("BRIDGE_RECORDING", "1795464289.60.wav"),
    ]


def test_unknown_caller_degraded_default_has_empty_customer() -> None:
    values = dict(contract_variables(Decision("support", 0, "default", None, True), "x.wav"))
    assert list(values) == list(VARIABLE_NAMES)
    assert values["BRIDGE_CUSTOMER_ID"] == ""
    assert values["BRIDGE_CUSTOMER_NAME"] == ""
    assert values["BRIDGE_TAGS"] == ""
    assert values["BRIDGE_DEGRADED"] == "1"


def test_hostile_customer_text_loses_control_characters_and_is_capped() -> None:
    customer = Customer(
        "id\r\n1", 'Eve\r\nAction: Originate\x00"quoted"' + "x" * 5000, ("a,b", "\n", "ok")
    )
    values = dict(contract_variables(Decision("q", 0, "r", customer), "f.wav"))
    for value in values.values():
        assert not any(ch in value for ch in "\r\n\x00")
        assert len(value) <= MAX_VALUE_CHARS
    assert values["BRIDGE_CUSTOMER_NAME"].startswith('Eve  Action: Originate "quoted"')
    assert values["BRIDGE_TAGS"] == "a b,ok"


def test_utf8_names_survive() -> None:
    customer = Customer("c3", "张伟", ("vip", "complaint-risk"))
    values = dict(contract_variables(Decision("senior", 0, "vip", customer), "r.wav"))
    assert values["BRIDGE_CUSTOMER_NAME"] == "张伟"
    assert values["BRIDGE_TAGS"] == "vip,complaint-risk"


def test_plain_text_drops_lone_surrogates() -> None:
    assert plain_text("a\udcffb") == "ab"


@pytest.mark.parametrize(
    ("template", "linkedid", "uniqueid", "expected"),
    [
        ("${linkedid}.wav", "1795464289.60", "1795464289.67", "1795464289.60.wav"),
        ("${uniqueid}.wav", "1795464289.60", "1795464289.67", "1795464289.67.wav"),
        ("calls/${linkedid}-${uniqueid}.wav", "1.1", "1.2", "calls/1.1-1.2.wav"),
        ("${linkedid}.wav", "../../etc/passwd", "1.2", "1.2.wav"),
        ("${linkedid}.wav", "", "1.2", "1.2.wav"),
        ("${linkedid}.wav", "a\nb", "x/y", "unknown.wav"),
    ],
)
def test_recording_name_fills_the_template_with_safe_ids(
    template: str, linkedid: str, uniqueid: str, expected: str
) -> None:
    assert recording_name(template, linkedid=linkedid, uniqueid=uniqueid) == expected
