"""AMI frames become the tracker's small events; hostile text is made safe."""

from __future__ import annotations

from datetime import UTC, datetime

from bridge.ami import normalise as n
from bridge.ami.protocol import AmiParser, Frame
from tests.conftest import TRACES

AT = datetime(2026, 11, 23, 20, 4, tzinfo=UTC)


def frame(text: str) -> Frame:
    (f,) = AmiParser().feed(text.replace("\n", "\r\n").encode() + b"\r\n\r\n")
    return f


def test_newchannel() -> None:
    e = n.normalise(
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
    e = n.normalise(
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
    assert n.normalise(frame(base + "Variable: QUEUE\nValue: x"), AT) is None
    e = n.normalise(frame(base + "Variable: MIXMONITOR_FILENAME\nValue: /r/1.1.wav"), AT)
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
    e = n.normalise(f, AT)
    assert isinstance(e, n.CallerIdChanged)
    assert e.caller_num == "+1555[31m"
    assert e.caller_name.startswith("<script>x") and len(e.caller_name) == n.MAX_TEXT


def test_missing_identity_or_unknown_events_are_ignored() -> None:
    assert n.normalise(frame("Event: Hangup\nChannel: X"), AT) is None
    assert n.normalise(frame("Event: DeviceStateChange\nDevice: PJSIP/1001"), AT) is None
    assert n.normalise(frame("Response: Success\nPing: Pong"), AT) is None
    assert n.normalise(frame("Event: Cdr\nChannel: X"), AT) is None


def test_bad_numbers_default_to_zero() -> None:
    e = n.normalise(
        frame("Event: Hangup\nUniqueid: 1.1\nLinkedid: 1.0\nChannel: C\nCause: 1e99\nCause-txt: ?"),
        AT,
    )
    assert isinstance(e, n.Hangup) and e.cause == 0


def test_resync_listings() -> None:
    ch = n.normalise(
        frame(
            "Event: CoreShowChannel\nActionID: r1\nChannel: PJSIP/2001-5\nUniqueid: 1.3\n"
            "Linkedid: 1.0\nChannelState: 6\nApplication: AppQueue\nDuration: 01:02:03\n"
            "BridgeId: b1\nCallerIDNum: +1555\nCallerIDName: Bob\nExten: 1\nContext: c"
        ),
        AT,
    )
    assert isinstance(ch, n.ChannelListed)
    assert (ch.duration_s, ch.application, ch.state, ch.action_id) == (3723, "AppQueue", 6, "r1")
    qe = n.normalise(
        frame(
            "Event: QueueEntry\nQueue: support\nPosition: 2\nChannel: PJSIP/trunk-1\n"
            "Uniqueid: 1.0\nCallerIDNum: +1555\nCallerIDName: Bob\nWait: 12"
        ),
        AT,
    )
    assert qe == n.QueueEntryListed(
        AT, "support", "1.0", "PJSIP/trunk-1", 2, 12, "+1555", "Bob", ""
    )
    qm = n.normalise(
        frame(
            "Event: QueueMember\nQueue: support\nName: Agent 1001\nLocation: PJSIP/1001\n"
            "Status: 1\nPaused: 0\nInCall: 1"
        ),
        AT,
    )
    assert qm == n.QueueMemberListed(AT, "support", "PJSIP/1001", "Agent 1001", 1, False, True, "")


def test_every_trace_frame_normalises_without_error() -> None:
    seen: set[str] = set()
    for log in TRACES.glob("*/ami.log"):
        for f in AmiParser().feed(log.read_bytes()):
            e = n.normalise(f, AT)
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
