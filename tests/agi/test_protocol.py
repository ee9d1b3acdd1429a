"""The FastAGI wire code, fed byte literals and the recorded Asterisk sessions."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.agi.protocol import (
    MAX_ENV_VALUE,
    MAX_HEADER_BYTES,
    EnvParser,
    Reply,
    ReplyParser,
    encode_get_variable,
    encode_set_variable,
    encode_verbose,
    parse_env,
    parse_reply_line,
)
from bridge.errors import AgiProtocolError, UnsafeValueError
from tests.agi.client import parse_args
from tests.agi.traces import agi_sessions

HEADER = (
    b"agi_network: yes\n"
    b"agi_network_script: route\n"
    b"agi_request: agi://127.0.0.1:4573/route\n"
    b"agi_channel: PJSIP/trunk-00000001\n"
    b"agi_uniqueid: 1795464246.1\n"
    b"agi_callerid: +15551230001\n"
    b"agi_calleridname: Alice VIP\n"
    b"agi_accountcode: \n"
    b"agi_arg_1: first\n"
    b"agi_arg_2: second\n"
    b"\n"
)


def test_env_is_parsed_into_its_keys() -> None:
    env = parse_env(HEADER)
    assert env.script == "route"
    assert env.get("channel") == "PJSIP/trunk-00000001"
    assert env.get("callerid") == "+15551230001"
    assert env.get("calleridname") == "Alice VIP"
    assert env.get("accountcode") == ""
    assert env.args == ("first", "second")


def test_env_arrives_in_any_split_and_keeps_what_follows() -> None:
    parser = EnvParser()
    for i in range(len(HEADER) - 1):
        assert parser.feed(HEADER[i : i + 1]) is None
    env = parser.feed(HEADER[-1:] + b"200 result=1\n")
    assert env is not None and env.get("uniqueid") == "1795464246.1"
    assert parser.rest == b"200 result=1\n"


def test_a_known_key_without_a_colon_is_refused_as_any_other() -> None:
    # Asterisk's own keys skip the key pattern; the line must still be `agi_<name>: value`.
    with pytest.raises(AgiProtocolError, match="not an agi_<name>"):
        parse_env(b"agi_callerid +15551230001\n\n")


def test_a_cr_is_cut_only_before_the_lf_and_only_once() -> None:
    env = parse_env(b"agi_callerid: 1\r\r\nagi_dnid: 2\rx\n\r\n")
    assert env.get("callerid") == "1\r" and env.get("dnid") == "2\rx"


def test_set_variables_answer_reads_as_the_full_parse() -> None:
    parser = ReplyParser()
    parser.feed(b"200 result=1\n200 result=1 (x)\n")
    assert list(parser.replies()) == [
        parse_reply_line("200 result=1"),
        parse_reply_line("200 result=1 (x)"),
    ]


def test_crlf_lines_are_accepted() -> None:
    env = parse_env(HEADER.replace(b"\n", b"\r\n"))
    assert env.get("calleridname") == "Alice VIP"


def test_script_comes_from_the_request_path_when_network_script_is_missing() -> None:
    env = parse_env(b"agi_request: agi://10.0.0.1:4573/route?x=1\n\n")
    assert env.script == "route"


def test_a_forged_duplicate_key_is_refused() -> None:
    # What Asterisk writes for a caller name `x\nagi_network_script: admin`: it does not escape.
    forged = HEADER.replace(
        b"agi_calleridname: Alice VIP\n", b"agi_calleridname: x\nagi_network_script: admin\n"
    )
    with pytest.raises(AgiProtocolError, match="twice"):
        parse_env(forged)


@pytest.mark.parametrize(
    "line",
    [b"network_script: admin", b"agi_: x", b"AGI_CHANNEL: x", b"agi_x y: z", b"no colon", b"\x00"],
)
def test_lines_that_are_not_agi_keys_are_refused(line: bytes) -> None:
    with pytest.raises(AgiProtocolError):
        parse_env(b"agi_network_script: route\n" + line + b"\n\n")


def test_a_header_over_the_line_limit_is_refused_before_it_ends() -> None:
    parser = EnvParser()
    with pytest.raises(AgiProtocolError, match="lines"):
        for i in range(1000):
            parser.feed(f"agi_k{i}: v\n".encode())


def test_a_header_over_the_size_limit_is_refused_even_without_a_newline() -> None:
    parser = EnvParser()
    parser.feed(b"agi_calleridname: ")
    with pytest.raises(AgiProtocolError, match="bytes"):
        parser.feed(b"x" * MAX_HEADER_BYTES)


def test_an_oversized_value_is_cut_and_named_not_a_broken_header() -> None:
    env = parse_env(
        b"agi_network_script: route\nagi_calleridname: " + b"N" * 20_000
        + b"\nagi_callerid: +15551230001\n\n"
    )  # fmt: skip
    assert env.get("calleridname") == "N" * MAX_ENV_VALUE
    assert env.get("callerid") == "+15551230001"
    assert env.truncated == frozenset({"calleridname"})
    assert parse_env(b"agi_network_script: route\n\n").truncated == frozenset()


def test_the_header_limit_is_64_kib_in_total() -> None:
    assert MAX_HEADER_BYTES == 64 * 1024
    parser = EnvParser()
    parser.feed(b"agi_a: " + b"x" * 40_000 + b"\n")
    with pytest.raises(AgiProtocolError, match="bytes"):
        parser.feed(b"agi_b: " + b"x" * 30_000 + b"\n")


def test_invalid_utf8_is_decoded_with_replacement_and_utf8_kept() -> None:
    env = parse_env(
        b"agi_network_script: route\nagi_calleridname: Jos\xe9\n"
        b"agi_dnid: \xe5\xbc\xa0\xe4\xbc\x9f\n\n"
    )
    assert env.get("calleridname") == "Jos\ufffd"
    assert env.get("dnid") == "张伟"


def test_an_empty_header_is_refused() -> None:
    with pytest.raises(AgiProtocolError):
        parse_env(b"\n")


def test_an_unterminated_header_is_refused() -> None:
    with pytest.raises(AgiProtocolError, match="blank line"):
        parse_env(b"agi_network_script: route\n")


# --- commands ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["senior", "", "Alice Chen", 'say "hi"', "back\\slash", "\\", '"', "张伟", "a\tb", "end\\"],
)
def test_set_variable_round_trips_through_asterisks_argument_parser(value: str) -> None:
    line = encode_set_variable("BRIDGE_CUSTOMER_NAME", value)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert parse_args(line.decode().rstrip("\n")) == [
        "SET",
        "VARIABLE",
        "BRIDGE_CUSTOMER_NAME",
        value,
    ]


def test_set_variable_replaces_cr_lf_nul_and_controls() -> None:
    line = encode_set_variable("X", "a\r\nSET VARIABLE Y 1\x00\x1b")
    assert line == b'SET VARIABLE X "a  SET VARIABLE Y 1  "\n'


def test_set_variable_caps_long_values() -> None:
    line = encode_set_variable("X", "é" * 10_000)
    assert len(parse_args(line.decode().rstrip("\n"))[3]) == 1024


@pytest.mark.parametrize("name", ["", "A B", 'A"', "A\nB", "1ABC", "X(a b)", "X;Y", "A" * 200])
def test_bad_variable_names_are_refused(name: str) -> None:
    with pytest.raises(UnsafeValueError):
        encode_set_variable(name, "v")
    with pytest.raises(UnsafeValueError):
        encode_get_variable(name)


def test_get_variable_reads_a_function() -> None:
    assert encode_get_variable("CHANNEL(linkedid)") == b"GET VARIABLE CHANNEL(linkedid)\n"


def test_verbose_is_quoted() -> None:
    assert encode_verbose('no "script"\n', 9) == b'VERBOSE "no \\"script\\" " 4\n'


# --- replies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("200 result=1", Reply(200, 1)),
        ("200 result=0", Reply(200, 0)),
        ("200 result=-1", Reply(200, -1)),
        ("200 result=1 (1795464246.0)", Reply(200, 1, "1795464246.0")),
        ("200 result=1 (a (nested) value)", Reply(200, 1, "a (nested) value")),
        ("200 result=0 endpos=12345", Reply(200, 0, None, 12345)),
        ("200 result=49 (dtmf) endpos=800", Reply(200, 49, "dtmf", 800)),
        ("510 Invalid or unknown command", Reply(510, text="Invalid or unknown command")),
        (
            "511 Command Not Permitted on a dead channel or intercept routine",
            Reply(511, text="Command Not Permitted on a dead channel or intercept routine"),
        ),
    ],
)
def test_reply_lines(line: str, reply: Reply) -> None:
    assert parse_reply_line(line) == reply


@pytest.mark.parametrize("line", ["200 result=x", "200 nothing", "hello", "300 x", "20 result=1"])
def test_malformed_replies_are_refused(line: str) -> None:
    with pytest.raises(AgiProtocolError):
        parse_reply_line(line)


def test_reply_parser_handles_usage_blocks_hangup_and_splits() -> None:
    data = (
        b"HANGUP\n"
        b"520-Invalid command syntax.  Proper usage follows:\n"
        b" Usage: SET VARIABLE <variablename> <value>\n"
        b"520 End of proper usage.\n"
        b"511 Command Not Permitted on a dead channel or intercept routine\n"
        b"200 result=1 (x)\r\n"
    )
    parser = ReplyParser()
    got: list[Reply] = []
    for i in range(len(data)):
        parser.feed(data[i : i + 1])
        got.extend(parser.replies())
    assert parser.hangup
    assert [r.code for r in got] == [520, 511, 200]
    assert "Usage: SET VARIABLE" in got[0].text and got[0].text.endswith("End of proper usage.")
    assert got[2].data == "x"


def test_an_oversized_reply_line_is_refused() -> None:
    parser = ReplyParser()
    parser.feed(b"200 result=1 (" + b"x" * 9000)
    with pytest.raises(AgiProtocolError, match="longer"):
        list(parser.replies())


def test_an_endless_usage_block_is_refused() -> None:
    parser = ReplyParser()
    parser.feed(b"520-Invalid\n" + b"more\n" * 200)
    with pytest.raises(AgiProtocolError, match="usage"):
        list(parser.replies())


# --- recorded sessions -------------------------------------------------------------------


def test_every_recorded_session_parses(traces: Path) -> None:
    seen = 0
    for scenario in sorted(p for p in traces.iterdir() if (p / "agi.log").exists()):
        for session in agi_sessions(scenario / "agi.log"):
            env = parse_env(session.header)
            assert env.script == "route"
            assert env.get("uniqueid") and env.get("channel").startswith("Local/")
            for command, reply in session.exchanges:
                assert parse_reply_line(reply).ok
                assert command.startswith("SET VARIABLE BRIDGE_QUEUE ")
            seen += 1
    assert seen == 16  # 8 single-call scenarios (attended-transfer too) + concurrent-8
