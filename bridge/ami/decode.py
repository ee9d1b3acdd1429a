"""AMI frames decoded into the typed PBX events of `bridge.pbx_events`. Pure.

`decode_event(frame, at)` returns one event dataclass or None (events the tracker has no use for,
responses, and frames missing the fields that identify a channel). `at` is supplied by the
caller: arrival time on a live link, a synthetic clock in replay (traces carry no timestamps).

Text from the wire is hostile: control characters (NUL included) are removed and values are
capped in length, so nothing downstream (JSON pops, PostgreSQL text) chokes on them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime

from bridge.ami.protocol import Frame
from bridge.pbx_events import (
    AgentCalled,
    AgentComplete,
    AgentConnect,
    AgentRingNoAnswer,
    AttendedTransfer,
    BlindTransfer,
    BridgeEnter,
    BridgeLeave,
    CallerIdChanged,
    CdrRecord,
    ChannelListed,
    ChannelStateChanged,
    DialBegin,
    DialEnd,
    Hangup,
    HangupRequested,
    NewChannel,
    PbxEvent,
    QueueCallerAbandon,
    QueueCallerJoin,
    QueueCallerLeave,
    QueueEntryListed,
    QueueMemberListed,
    RecordingSet,
)

__all__ = ["HANDLED_EVENTS", "WANTED_EVENTS", "clean", "decode_event"]

MAX_TEXT = 256
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
UNKNOWN = "<unknown>"


def clean(value: str | None, limit: int = MAX_TEXT) -> str:
    """Wire text made safe: no control characters, at most `limit` characters."""
    if not value:
        return ""
    if not value.isprintable():  # fast C check; then remove only the control characters
        value = _CONTROL.sub("", value)
    return value[:limit]


def _int(value: str | None, default: int = 0) -> int:
    try:
        number = int((value or "").strip())
    except ValueError:
        return default
    return max(0, min(number, 10**9))


def _caller(value: str | None) -> str:
    text = clean(value)
    return "" if text == UNKNOWN else text


def _callerid(frame: Frame) -> tuple[str, str]:
    return _caller(frame.get("CallerIDNum")), _caller(frame.get("CallerIDName"))


def _hms(value: str | None) -> int:
    """`01:02:03` (CoreShowChannel Duration) in seconds; 0 when unreadable."""
    parts = (value or "").strip().split(":")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        return 0
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return min(seconds, 10**9)


def _g(frame: Frame, key: str) -> str:
    return clean(frame.get(key))


def _chan(frame: Frame) -> tuple[str, str, str] | None:
    uniqueid = _g(frame, "Uniqueid")
    if not uniqueid:
        return None
    return uniqueid, _g(frame, "Linkedid") or uniqueid, _g(frame, "Channel")


def _new_channel(f: Frame, at: datetime) -> PbxEvent | None:
    c = _chan(f)
    if c is None:
        return None
    return NewChannel(
        at,
        *c,
        state=_int(f.get("ChannelState")),
        caller_num=_caller(f.get("CallerIDNum")),
        caller_name=_caller(f.get("CallerIDName")),
        exten=_g(f, "Exten"),
        context=_g(f, "Context"),
    )


def _new_state(f: Frame, at: datetime) -> PbxEvent | None:
    c = _chan(f)
    if c is None:
        return None
    return ChannelStateChanged(at, *c, _int(f.get("ChannelState")), *_callerid(f))


def _new_callerid(f: Frame, at: datetime) -> PbxEvent | None:
    c = _chan(f)
    if c is None:
        return None
    return CallerIdChanged(at, *c, _caller(f.get("CallerIDNum")), _caller(f.get("CallerIDName")))


def _var_set(f: Frame, at: datetime) -> PbxEvent | None:
    if (f.get("Variable") or "") != "MIXMONITOR_FILENAME":
        return None
    c = _chan(f)
    path = clean(f.get("Value"), 1024)
    if c is None or not path:
        return None
    return RecordingSet(at, *c, path)


def _queue_join(f: Frame, at: datetime) -> PbxEvent | None:
    c = _chan(f)
    if c is None:
        return None
    return QueueCallerJoin(at, *c, _g(f, "Queue"), _int(f.get("Position")), *_callerid(f))


def _queue_leave(f: Frame, at: datetime) -> PbxEvent | None:
    c = _chan(f)
    return None if c is None else QueueCallerLeave(at, *c, _g(f, "Queue"))


def _hangup_request(f: Frame, at: datetime) -> PbxEvent | None:
    c = _chan(f)
    return None if c is None else HangupRequested(at, *c)


def _queue_abandon(f: Frame, at: datetime) -> PbxEvent | None:
    c = _chan(f)
    return None if c is None else QueueCallerAbandon(at, *c, _g(f, "Queue"))


def _agent_called(f: Frame, at: datetime) -> PbxEvent | None:
    c = _chan(f)
    if c is None:
        return None
    return AgentCalled(
        at,
        *c,
        dest_channel=_g(f, "DestChannel"),
        dest_uniqueid=_g(f, "DestUniqueid"),
        queue=_g(f, "Queue"),
        interface=_g(f, "Interface"),
        member_name=_g(f, "MemberName"),
        caller_num=_caller(f.get("CallerIDNum")),
        caller_name=_caller(f.get("CallerIDName")),
    )


def _agent_connect(f: Frame, at: datetime) -> PbxEvent | None:
    c = _chan(f)
    if c is None:
        return None
    return AgentConnect(
        at,
        *c,
        dest_channel=_g(f, "DestChannel"),
        dest_uniqueid=_g(f, "DestUniqueid"),
        queue=_g(f, "Queue"),
        interface=_g(f, "Interface"),
        hold_s=_int(f.get("HoldTime")),
    )


def _agent_complete(f: Frame, at: datetime) -> PbxEvent | None:
    c = _chan(f)
    if c is None:
        return None
    return AgentComplete(
        at,
        *c,
        dest_channel=_g(f, "DestChannel"),
        dest_uniqueid=_g(f, "DestUniqueid"),
        queue=_g(f, "Queue"),
        interface=_g(f, "Interface"),
        talk_s=_int(f.get("TalkTime")),
        reason=_g(f, "Reason"),
    )


def _agent_noanswer(f: Frame, at: datetime) -> PbxEvent | None:
    c = _chan(f)
    if c is None:
        return None
    return AgentRingNoAnswer(
        at,
        *c,
        dest_channel=_g(f, "DestChannel"),
        dest_uniqueid=_g(f, "DestUniqueid"),
        queue=_g(f, "Queue"),
        interface=_g(f, "Interface"),
    )


def _dial_begin(f: Frame, at: datetime) -> PbxEvent | None:
    dest = _g(f, "DestChannel")
    if not dest:
        return None
    return DialBegin(
        at,
        uniqueid=_g(f, "Uniqueid"),
        linkedid=_g(f, "Linkedid") or _g(f, "Uniqueid"),
        channel=_g(f, "Channel"),
        dest_channel=dest,
        dest_uniqueid=_g(f, "DestUniqueid"),
        dest_linkedid=_g(f, "DestLinkedid"),
        caller_num=_caller(f.get("CallerIDNum")),
        caller_name=_caller(f.get("CallerIDName")),
        exten=_g(f, "Exten"),
    )


def _dial_end(f: Frame, at: datetime) -> PbxEvent | None:
    dest = _g(f, "DestChannel")
    if not dest:
        return None
    return DialEnd(
        at,
        uniqueid=_g(f, "Uniqueid"),
        linkedid=_g(f, "Linkedid") or _g(f, "Uniqueid"),
        channel=_g(f, "Channel"),
        dest_channel=dest,
        dest_uniqueid=_g(f, "DestUniqueid"),
        dest_linkedid=_g(f, "DestLinkedid"),
        status=_g(f, "DialStatus").upper(),
    )


def _bridge_enter(f: Frame, at: datetime) -> PbxEvent | None:
    c = _chan(f)
    return None if c is None else BridgeEnter(at, *c, _g(f, "BridgeUniqueid"))


def _bridge_leave(f: Frame, at: datetime) -> PbxEvent | None:
    c = _chan(f)
    return None if c is None else BridgeLeave(at, *c, _g(f, "BridgeUniqueid"))


def _blind_transfer(f: Frame, at: datetime) -> PbxEvent | None:
    return BlindTransfer(
        at,
        success=(f.get("Result") or "").strip().lower() == "success",
        transferer_channel=_g(f, "TransfererChannel"),
        transferer_uniqueid=_g(f, "TransfererUniqueid"),
        transferer_linkedid=_g(f, "TransfererLinkedid"),
        transferee_channel=_g(f, "TransfereeChannel"),
        transferee_uniqueid=_g(f, "TransfereeUniqueid"),
        transferee_linkedid=_g(f, "TransfereeLinkedid"),
        extension=_g(f, "Extension"),
        context=_g(f, "Context"),
    )


def _attended_transfer(f: Frame, at: datetime) -> PbxEvent | None:
    return AttendedTransfer(
        at,
        success=(f.get("Result") or "").strip().lower() == "success",
        orig_transferer_channel=_g(f, "OrigTransfererChannel"),
        orig_transferer_uniqueid=_g(f, "OrigTransfererUniqueid"),
        orig_transferer_linkedid=_g(f, "OrigTransfererLinkedid"),
        second_transferer_channel=_g(f, "SecondTransfererChannel"),
        second_transferer_uniqueid=_g(f, "SecondTransfererUniqueid"),
        second_transferer_linkedid=_g(f, "SecondTransfererLinkedid"),
        transferee_channel=_g(f, "TransfereeChannel"),
        transferee_uniqueid=_g(f, "TransfereeUniqueid"),
        transferee_linkedid=_g(f, "TransfereeLinkedid"),
        target_channel=_g(f, "TransferTargetChannel"),
        target_uniqueid=_g(f, "TransferTargetUniqueid"),
        target_linkedid=_g(f, "TransferTargetLinkedid"),
        dest_type=_g(f, "DestType"),
    )


def _hangup(f: Frame, at: datetime) -> PbxEvent | None:
    c = _chan(f)
    if c is None:
        return None
    return Hangup(at, *c, _int(f.get("Cause")), _g(f, "Cause-txt"))


def _cdr(f: Frame, at: datetime) -> PbxEvent | None:
    uniqueid = _g(f, "UniqueID")
    if not uniqueid:
        return None
    return CdrRecord(
        at,
        uniqueid=uniqueid,
        channel=_g(f, "Channel"),
        destination_channel=_g(f, "DestinationChannel"),
        source=_caller(f.get("Source")),
        destination=_g(f, "Destination"),
        disposition=_g(f, "Disposition").upper(),
        billable_s=_int(f.get("BillableSeconds")),
        duration_s=_int(f.get("Duration")),
        start_time=_g(f, "StartTime"),
        answer_time=_g(f, "AnswerTime"),
        end_time=_g(f, "EndTime"),
        last_application=_g(f, "LastApplication"),
        last_data=_g(f, "LastData"),
    )


def _core_show_channel(f: Frame, at: datetime) -> PbxEvent | None:
    c = _chan(f)
    if c is None:
        return None
    return ChannelListed(
        at,
        *c,
        state=_int(f.get("ChannelState")),
        caller_num=_caller(f.get("CallerIDNum")),
        caller_name=_caller(f.get("CallerIDName")),
        exten=_g(f, "Exten"),
        context=_g(f, "Context"),
        application=_g(f, "Application"),
        bridge_id=_g(f, "BridgeId"),
        duration_s=_hms(f.get("Duration")),
        action_id=_g(f, "ActionID"),
        application_data=_g(f, "ApplicationData"),
    )


def _queue_entry(f: Frame, at: datetime) -> PbxEvent | None:
    return QueueEntryListed(
        at,
        queue=_g(f, "Queue"),
        uniqueid=_g(f, "Uniqueid"),
        channel=_g(f, "Channel"),
        position=_int(f.get("Position")),
        wait_s=_int(f.get("Wait")),
        caller_num=_caller(f.get("CallerIDNum")),
        caller_name=_caller(f.get("CallerIDName")),
        action_id=_g(f, "ActionID"),
    )


def _queue_member(f: Frame, at: datetime) -> PbxEvent | None:
    return QueueMemberListed(
        at,
        queue=_g(f, "Queue"),
        interface=_g(f, "Location") or _g(f, "Interface") or _g(f, "StateInterface"),
        name=_g(f, "Name") or _g(f, "MemberName"),
        status=_int(f.get("Status")),
        paused=(f.get("Paused") or "").strip() in {"1", "true", "yes"},
        in_call=(f.get("InCall") or "").strip() in {"1", "true", "yes"},
        action_id=_g(f, "ActionID"),
    )


_HANDLERS: dict[str, Callable[[Frame, datetime], PbxEvent | None]] = {
    "Newchannel": _new_channel,
    "Newstate": _new_state,
    "NewCallerid": _new_callerid,
    "VarSet": _var_set,
    "QueueCallerJoin": _queue_join,
    "QueueCallerLeave": _queue_leave,
    "QueueCallerAbandon": _queue_abandon,
    "HangupRequest": _hangup_request,
    "AgentCalled": _agent_called,
    "AgentConnect": _agent_connect,
    "AgentComplete": _agent_complete,
    "AgentRingNoAnswer": _agent_noanswer,
    "DialBegin": _dial_begin,
    "DialEnd": _dial_end,
    "BridgeEnter": _bridge_enter,
    "BridgeLeave": _bridge_leave,
    "BlindTransfer": _blind_transfer,
    "AttendedTransfer": _attended_transfer,
    "Hangup": _hangup,
    "Cdr": _cdr,
    "CoreShowChannel": _core_show_channel,
    "QueueEntry": _queue_entry,
    "QueueMember": _queue_member,
}

HANDLED_EVENTS = frozenset(_HANDLERS)
# What the link's parser keeps of the unsolicited events (`AmiParser(events=...)`): the
# handled ones, and of `VarSet` only those of the one variable `_var_set` reads.
WANTED_EVENTS: Mapping[str, str] = {name: "" for name in _HANDLERS} | {
    "VarSet": "MIXMONITOR_FILENAME"
}


def decode_event(frame: Frame, at: datetime) -> PbxEvent | None:
    """The typed event of one frame, or None for frames nobody here needs."""
    name = frame.event
    if name is None:
        return None
    handler = _HANDLERS.get(name)
    return None if handler is None else handler(frame, at)
