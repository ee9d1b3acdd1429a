"""The AMI parser and action encoder, from byte literals and the recorded traces."""

from __future__ import annotations

import random

import pytest

from bridge.ami.protocol import AmiParser, Frame, encode_action
from bridge.errors import AmiProtocolError, UnsafeValueError
from tests.conftest import SCENARIOS, TRACES

AMI_SCENARIOS = [s for s in SCENARIOS if (TRACES / s / "ami.log").exists()]


def feed_all(parser: AmiParser, chunks: list[bytes]) -> list[Frame]:
    frames: list[Frame] = []
    for chunk in chunks:
        frames.extend(parser.feed(chunk))
    return frames


def cut(data: bytes, rng: random.Random, pieces: int) -> list[bytes]:
    points = sorted(rng.sample(range(1, len(data)), pieces - 1))
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@pytest.mark.parametrize("scenario", AMI_SCENARIOS)
def test_trace_cut_at_random_points_yields_the_same_frames(scenario: str) -> None:
    data = (TRACES / scenario / "ami.log").read_bytes()
    whole = AmiParser().feed(data)
    assert len(whole) == data.count(b"\r\n\r\n")
    rng = random.Random(f"{scenario}-cuts")
    for pieces in (2, 17, 500):
        assert feed_all(AmiParser(), cut(data, rng, pieces)) == whole
    # One byte at a time, the hardest case for a buffer.
    assert feed_all(AmiParser(), [data[i : i + 1] for i in range(min(len(data), 6000))]) == (
        AmiParser().feed(data[: data.rfind(b"\r\n\r\n", 0, 6000) + 4])
    )


def test_trace_frames_keep_order_and_values() -> None:
    frames = AmiParser().feed((TRACES / "vip-answered" / "ami.log").read_bytes())
    assert frames[0].response == "Success" and frames[0].action_id == "lab-2"
    first = frames[1]
    assert first.event == "Newchannel"
    assert first.get("channel") == "Local/18005550100@inbound-00000000;1"
    assert first.get("AccountCode") == ""
    assert [k for k, _ in first][:3] == ["Event", "Privilege", "Channel"]


def test_bare_lf_framing_is_accepted() -> None:
    frames = AmiParser().feed(b"Event: Hangup\nUniqueid: 1.1\n\nEvent: Cdr\nUniqueID: 1.1\n\n")
    assert [f.event for f in frames] == ["Hangup", "Cdr"]
    assert frames[1].get("uniqueid") == "1.1"


def test_banner_then_frames() -> None:
    parser = AmiParser()
    frames = feed_all(
        parser, [b"Asterisk Call", b" Manager/6.0.0\r\nResponse: Success\r\n", b"\r\n"]
    )
    assert frames[0].banner == "Asterisk Call Manager/6.0.0"
    assert frames[1].response == "Success"
    assert frames[1].banner is None


def test_utf8_split_across_reads_survives() -> None:
    data = "Event: Newchannel\r\nCallerIDName: 张伟\r\n\r\n".encode()
    split = data.index("伟".encode()) + 1  # inside the three-byte character
    frames = feed_all(AmiParser(), [data[:split], data[split:]])
    assert frames[0].get("CallerIDName") == "张伟"


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    frames = AmiParser().feed(b"Event: Newchannel\r\nCallerIDName: \xff\xfeBob\xc3\r\n\r\n")
    assert frames[0].get("CallerIDName") == "\ufffd\ufffdBob\ufffd"


def test_repeated_keys_are_kept_in_order() -> None:
    frames = AmiParser().feed(b"Event: Newexten\r\nChanVariable: A=1\r\nChanVariable: B=2\r\n\r\n")
    assert frames[0].get("ChanVariable") == "A=1"
    assert frames[0].get_all("chanvariable") == ["A=1", "B=2"]


def test_value_keeps_colons_and_empty_values() -> None:
    (frame,) = AmiParser().feed(b"Event: X\r\nStartTime: 2026-11-23 20:04:06\r\nEmpty:\r\n\r\n")
    assert frame.get("StartTime") == "2026-11-23 20:04:06"
    assert frame.get("Empty") == ""


def test_oversized_frame_is_dropped_and_the_stream_resyncs() -> None:
    parser = AmiParser(max_frame_bytes=1024)
    big = b"Event: Big\r\n" + b"X: " + b"a" * 5000 + b"\r\n\r\n"
    good = b"Event: Hangup\r\nUniqueid: 1.2\r\n\r\n"
    frames: list[Frame] = []
    errors = 0
    for chunk in cut(big + good + big + good, random.Random(7), 40):
        try:
            frames.extend(parser.feed(chunk))
        except AmiProtocolError as exc:
            errors += 1
            frames.extend(exc.frames)  # type: ignore[attr-defined]
    assert [f.event for f in frames] == ["Hangup", "Hangup"]
    assert errors == 2
    assert len(parser._buf) < 1024 + 16  # memory stays bounded


def test_endless_line_without_terminator_stays_bounded() -> None:
    parser = AmiParser(max_frame_bytes=4096)
    raised = 0
    for _ in range(200):
        try:
            parser.feed(b"A" * 1000)
        except AmiProtocolError:
            raised += 1
        assert len(parser._buf) <= 4096 + 1000
    assert raised == 1
    assert parser.feed(b"\r\n\r\nEvent: Ping\r\n\r\n")[0].event == "Ping"


def test_too_many_headers_is_an_error() -> None:
    parser = AmiParser(max_headers=10)
    data = b"Event: X\r\n" + b"".join(b"K%d: v\r\n" % i for i in range(20)) + b"\r\n"
    with pytest.raises(AmiProtocolError) as info:
        parser.feed(data + b"Event: Y\r\n\r\n")
    assert [f.event for f in info.value.frames] == ["Y"]  # type: ignore[attr-defined]


def test_garbage_never_crashes() -> None:
    rng = random.Random(1234)
    parser = AmiParser(max_frame_bytes=2048)
    for _ in range(300):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        try:
            frames = parser.feed(blob)
        except AmiProtocolError as exc:
            frames = exc.frames  # type: ignore[attr-defined]
        for frame in frames:
            assert isinstance(frame.items, tuple)
    assert parser.feed(b"\r\n\r\nEvent: Ok\r\n\r\n")[-1].event == "Ok"


def test_old_style_command_output() -> None:
    (frame,) = AmiParser().feed(
        b"Response: Follows\r\nPrivilege: Command\r\nChannel  Location\r\n"
        b"1 active channel\r\n--END COMMAND--\r\n\r\n"
    )
    assert frame.response == "Follows"
    assert frame.get_all("Output") == ["Channel  Location", "1 active channel"]


def test_encode_action() -> None:
    data = encode_action("Login", {"Username": "bridge", "Secret": "s3", "ActionID": 7})
    assert data == b"Action: Login\r\nUsername: bridge\r\nSecret: s3\r\nActionID: 7\r\n\r\n"
    assert AmiParser().feed(data)[0].get("Action") == "Login"


@pytest.mark.parametrize(
    "fields",
    [
        {"Channel": "PJSIP/1001\r\nAction: Originate"},
        {"Channel": "PJSIP/1001\nAction: Originate"},
        {"Channel": "PJSIP/1001\rX"},
        {"Channel": "PJSIP/1001\x00"},
        {"Chan\r\nnel": "x"},
        {"Bad:Key": "x"},
        {"": "x"},
        {"Value": "x" * 10000},
    ],
)
def test_encoder_refuses_injection(fields: dict[str, str]) -> None:
    with pytest.raises(UnsafeValueError):
        encode_action("Hangup", fields)


def test_encoder_refuses_a_strange_action_name() -> None:
    with pytest.raises(UnsafeValueError):
        encode_action("Ping\r\nAction: Originate")
