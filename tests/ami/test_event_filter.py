"""The link's parser skips the unsolicited events nobody here reads (`WANTED_EVENTS`)
without splitting them into lines, and what it keeps decodes exactly as before."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.ami.decode import WANTED_EVENTS, decode_event
from bridge.ami.protocol import AmiParser

TRACES = Path(__file__).resolve().parent.parent / "fixtures" / "asterisk-traces"
AT = datetime(2026, 5, 1, tzinfo=UTC)
ALL_TRACES = sorted(p.parent.name for p in TRACES.glob("*/ami.log"))


def frames_of(*blocks: str) -> bytes:
    return "".join(block.replace("\n", "\r\n") + "\r\n\r\n" for block in blocks).encode()


@pytest.mark.parametrize("trace", ALL_TRACES)
def test_every_recorded_trace_decodes_the_same_with_and_without_the_filter(trace: str) -> None:
    data = (TRACES / trace / "ami.log").read_bytes()
    everything = [decode_event(f, AT) for f in AmiParser().feed(data)]
    filtered = AmiParser(events=WANTED_EVENTS)
    kept = [decode_event(f, AT) for f in filtered.feed(data)]
    assert [e for e in kept if e is not None] == [e for e in everything if e is not None]
    assert filtered.frames_skipped + filtered.frames_parsed == AmiParser().feed(data).__len__()


def test_most_of_a_real_pbx_stream_is_skipped_unparsed() -> None:
    data = (TRACES / "concurrent-8" / "ami.log").read_bytes()
    parser = AmiParser(events=WANTED_EVENTS)
    parser.feed(data)
    assert parser.frames_skipped > parser.frames_parsed


def test_an_unwanted_event_is_skipped_and_counted() -> None:
    parser = AmiParser(events={"Hangup": ""})
    frames = parser.feed(
        frames_of("Event: Newexten\nChannel: PJSIP/1-1", "Event: Hangup\nChannel: PJSIP/1-1")
    )
    assert [f.event for f in frames] == ["Hangup"] and parser.frames_skipped == 1


def test_an_event_kept_for_one_text_is_kept_only_with_that_text() -> None:
    parser = AmiParser(events={"VarSet": "MIXMONITOR_FILENAME"})
    frames = parser.feed(
        frames_of(
            "Event: VarSet\nVariable: BRIDGEPEER\nValue: PJSIP/2",
            "Event: VarSet\nVariable: MIXMONITOR_FILENAME\nValue: /rec/a.wav",
        )
    )
    assert [f["Variable"] for f in frames] == ["MIXMONITOR_FILENAME"]


def test_an_unwanted_event_answering_an_action_is_kept() -> None:
    parser = AmiParser(events={})
    frames = parser.feed(frames_of("Event: QueueParams\nQueue: support\nActionID: b-7"))
    assert [f.action_id for f in frames] == ["b-7"] and parser.frames_skipped == 0


def test_responses_banner_and_frames_not_led_by_event_are_always_parsed() -> None:
    parser = AmiParser(events={})
    data = b"Asterisk Call Manager/9.0.0\r\n" + frames_of(
        "Response: Success\nActionID: 1\nPing: Pong", "Privilege: call,all\nEvent: Newexten"
    )
    frames = parser.feed(data)
    assert frames[0].banner is not None
    assert [f.response for f in frames[1:]] == ["Success", None]
    assert frames[2].event == "Newexten" and parser.frames_skipped == 0


def test_a_wanted_name_with_stray_spaces_is_still_kept() -> None:
    parser = AmiParser(events={"Hangup": ""})
    frames = parser.feed(frames_of("Event: Hangup  \nChannel: PJSIP/1-1"))
    assert len(frames) == 1


def test_hostile_unwanted_frames_are_skipped_whole_and_the_stream_stays_in_step() -> None:
    parser = AmiParser(events={"Hangup": ""})
    noise = "Event: Newexten\nAppData: " + "x\x00'; DROP TABLE calls;--<script>" * 50
    frames = parser.feed(frames_of(noise, "Event: Hangup\nChannel: PJSIP/1-1") + b"\xff\xfe\r\n")
    assert [f.event for f in frames] == ["Hangup"] and parser.frames_skipped == 1
