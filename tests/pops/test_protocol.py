from __future__ import annotations

import json

import pytest

from bridge.pops.protocol import (
    Hello,
    Ping,
    PopProtocolError,
    Subscribe,
    Unsubscribe,
    encode,
    parse_client_message,
)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"type":"hello","token":"abc"}', Hello("abc")),
        ('{"type":"subscribe","queue":"senior"}', Subscribe("senior")),
        ('{"type":"unsubscribe","queue":"senior"}', Unsubscribe("senior")),
        ('{"type":"ping","extra":1}', Ping()),
    ],
)
def test_valid_client_messages(raw: str, message: object) -> None:
    assert parse_client_message(raw) == message


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b'{"type":"ping"}', 1003),
        ("x" * 70_000, 1009),
        ("{", 4002),
        ("NaN", 4002),
        ('{"type": NaN}', 4002),
        ("[]", 4002),
        ('"hello"', 4002),
        ("{}", 4002),
        ('{"type":"Hello","token":"a"}', 4002),
        ('{"type":"subscribe"}', 4002),
        ('{"type":"subscribe","queue":"x y"}', 4002),
        ('{"type":"subscribe","queue":"' + "q" * 81 + '"}', 4002),
        ('{"type":"hello"}', 4001),
        ('{"type":"hello","token":""}', 4001),
        ('{"type":"hello","token":["a"]}', 4001),
        ("[" * 100_000, 1009),
        ("[" * 50_000, 4002),  # deep nesting: RecursionError is caught, not raised
    ],
)
def test_bad_client_messages_name_a_close_code(raw: str | bytes, code: int) -> None:
    with pytest.raises(PopProtocolError) as err:
        parse_client_message(raw)
    assert err.value.code == code


def test_encode_keeps_text_as_text() -> None:
    text = encode({"caller_name": "<script>alert(1)</script>\u2028张伟", "n": None})
    assert json.loads(text) == {"caller_name": "<script>alert(1)</script>\u2028张伟", "n": None}
