"""AMI frames become the tracker's small events; hostile text is made safe."""

from __future__ import annotations

from datetime import UTC, datetime

from bridge import pbx_events as n
from bridge.ami import decode
from bridge.ami.protocol import AmiParser, Frame
from tests.conftest import TRACES

AT = datetime(2026, 11, 23, 20, 4, tzinfo=UTC)


def frame(text: str) -> Frame:
    (f,) = AmiParser().feed(text.replace("\n", "\r\n").encode() + b"\r\n\r\n")
    return f


def test_newchannel() -> None:
    e = decode.decode_event(
        frame(
            "Event: Newchannel\nChannel: PJSIP/trunk-0000000e\nChannelState: 4\n"
            "CallerIDNum: <unknown>\nCallerIDName: Bob\nContext: inbound\nExten: 18005550100\n"
            "Uniqueid: 1.28\nLinkedid: 1.28"
        ),
        AT,
    )
    assert e == n.NewChannel(
        AT, "1.28", "1.28", "PJSIP/trunk-0000000e", 4, "", "Bob", "18005550100", "inbound"
    )


def test_cdr_has_uniqueid_but_no_linkedid() -> None:
    e = decode.decode_event(
        frame(
            "Event: Cdr\nChannel: PJSIP/trunk-1\nUniqueID: 1.29\nDestinationChannel: PJSIP/2001-2"
            "\nBillableSeconds: 4\nDuration: 5\nDisposition: ANSWERED\nStartTime: x"
        ),
        AT,
    )
    assert isinstance(e, n.CdrRecord)
    assert (e.uniqueid, e.destination_channel, e.billable_s, e.duration_s) == (
        "1.29",
        "PJSIP/2001-2",
        4,
        5,
    )


def test_only_the_mixmonitor_varset_matters() -> None:
    base = "Event: VarSet\nChannel: C\nUniqueid: 1.1\nLinkedid: 1.0\n"
    assert decode.decode_event(frame(base + "Variable: QUEUE\nValue: x"), AT) is None
    e = decode.decode_event(frame(base + "Variable: MIXMONITOR_FILENAME\nValue: /r/1.1.wav"), AT)
    assert e == n.RecordingSet(AT, "1.1", "1.0", "C", "/r/1.1.wav")


def test_hostile_text_is_cleaned_and_capped() -> None:
    f = Frame(
        [
            ("Event", "NewCallerid"),
            ("Channel", "PJSIP/1-1"),
            ("Uniqueid", "1.1"),
            ("Linkedid", "1.1"),
            ("CallerIDNum", "+1555\x00\x1b[31m"),
            ("CallerIDName", "<script>\r\n" + "x" * 5000),
        ]
    )
    e = decode.decode_event(f, AT)
    assert isinstance(e, n.CallerIdChanged)
    assert e.caller_num == "+1555[31m"
    assert e.caller_name.startswith("<script>x") and len(e.caller_name) == decode.MAX_TEXT


def test_missing_identity_or_unknown_events_are_ignored() -> None:
    assert decode.decode_event(frame("Event: Hangup\nChannel: X"), AT) is None
    assert decode.decode_event(frame("Event: DeviceStateChange\nDevice: PJSIP/1001"), AT) is None
    assert decode.decode_event(frame("Response: Success\nPing: Pong"), AT) is None
    assert decode.decode_event(frame("Event: Cdr\nChannel: X"), AT) is None


def test_bad_numbers_default_to_zero() -> None:
    e = decode.decode_event(
        frame("Event: Hangup\nUniqueid: 1.1\nLinkedid: 1.0\nChannel: C\nCause: 1e99\nCause-txt: ?"),
        AT,
    )
    assert isinstance(e, n.Hangup) and e.cause == 0


def test_resync_listings() -> None:
    ch = decode.decode_event(
        frame(
            "Event: CoreShowChannel\nActionID: r1\nChannel: PJSIP/2001-5\nUniqueid: 1.3\n"
            "Linkedid: 1.0\nChannelState: 6\nApplication: AppQueue\nDuration: 01:02:03\n"
            "BridgeId: b1\nCallerIDNum: +1555\nCallerIDName: Bob\nExten: 1\nContext: c"
        ),
        AT,
    )
    assert isinstance(ch, n.ChannelListed)
    assert (ch.duration_s, ch.application, ch.state, ch.action_id) == (3723, "AppQueue", 6, "r1")
    qe = decode.decode_event(
        frame(
            "Event: QueueEntry\nQueue: support\nPosition: 2\nChannel: PJSIP/trunk-1\n"
            "Uniqueid: 1.0\nCallerIDNum: +1555\nCallerIDName: Bob\nWait: 12"
        ),
        AT,
    )
    assert qe == n.QueueEntryListed(
        AT, "support", "1.0", "PJSIP/trunk-1", 2, 12, "+1555", "Bob", ""
    )
    qm = decode.decode_event(
        frame(
            "Event: QueueMember\nQueue: support\nName: Agent 1001\nLocation: PJSIP/1001\n"
            "Status: 1\nPaused: 0\nInCall: 1"
        ),
        AT,
    )
    assert qm == n.QueueMemberListed(AT, "support", "PJSIP/1001", "Agent 1001", 1, False, True, "")


def test_every_trace_frame_decodes_without_error() -> None:
    seen: set[str] = set()
    for log in TRACES.glob("*/ami.log"):
        for f in AmiParser().feed(log.read_bytes()):
            e = decode.decode_event(f, AT)
            if e is not None:
                seen.add(type(e).__name__)
    assert {
        "NewChannel",
        "Hangup",
        "CdrRecord",
        "AgentCalled",
        "BlindTransfer",
        "QueueCallerAbandon",
        "RecordingSet",
    } <= seen
