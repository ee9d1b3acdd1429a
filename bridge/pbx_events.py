"""The PBX's events as typed values: what `bridge.ami.decode` makes of AMI frames, what the
call tracker consumes and what the event bus carries (e.g. `CdrRecord` to the record writer).

Plain frozen dataclasses with no behaviour, in a module of their own so that the AMI side that
produces them and the consumers (tracker, records) import them without importing each other.
Every text field is already cleaned of control characters and capped by the decoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import get_args

__all__ = [
    "PBX_EVENT_TYPES",
    "AgentCalled",
    "AgentComplete",
    "AgentConnect",
    "AgentRingNoAnswer",
    "AttendedTransfer",
    "BlindTransfer",
    "BridgeEnter",
    "BridgeLeave",
    "CallerIdChanged",
    "CdrRecord",
    "ChannelListed",
    "ChannelStateChanged",
    "DialBegin",
    "DialEnd",
    "Hangup",
    "HangupRequested",
    "NewChannel",
    "PbxEvent",
    "PbxSnapshot",
    "QueueCallerAbandon",
    "QueueCallerJoin",
    "QueueCallerLeave",
    "QueueEntryListed",
    "QueueMemberListed",
    "RecordingSet",
]


@dataclass(frozen=True, slots=True)
class NewChannel:
    at: datetime
    uniqueid: str
    linkedid: str
    channel: str
    state: int
    caller_num: str
    caller_name: str
    exten: str
    context: str


@dataclass(frozen=True, slots=True)
class ChannelStateChanged:
    at: datetime
    uniqueid: str
    linkedid: str
    channel: str
    state: int
    caller_num: str = ""
    caller_name: str = ""


@dataclass(frozen=True, slots=True)
class CallerIdChanged:
    at: datetime
    uniqueid: str
    linkedid: str
    channel: str
    caller_num: str
    caller_name: str


@dataclass(frozen=True, slots=True)
class RecordingSet:
    """`VarSet` of `MIXMONITOR_FILENAME`: the recording's path (needs the dialplan class)."""

    at: datetime
    uniqueid: str
    linkedid: str
    channel: str
    path: str


@dataclass(frozen=True, slots=True)
class QueueCallerJoin:
    at: datetime
    uniqueid: str
    linkedid: str
    channel: str
    queue: str
    position: int
    caller_num: str = ""
    caller_name: str = ""


@dataclass(frozen=True, slots=True)
class QueueCallerLeave:
    at: datetime
    uniqueid: str
    linkedid: str
    channel: str
    queue: str


@dataclass(frozen=True, slots=True)
class HangupRequested:
    """`HangupRequest`: something asked this channel to hang up (a caller's BYE does).

    Asterisk sends `QueueCallerAbandon` both when the caller hangs up in the queue and when
    the queue times out with the caller still on the line (app_queue's record_abandoned);
    only the first is preceded by a HangupRequest on the queued channel.
    """

    at: datetime
    uniqueid: str
    linkedid: str
    channel: str


@dataclass(frozen=True, slots=True)
class QueueCallerAbandon:
    at: datetime
    uniqueid: str
    linkedid: str
    channel: str
    queue: str


@dataclass(frozen=True, slots=True)
class AgentCalled:
    at: datetime
    uniqueid: str  # the caller's channel (the one waiting in the queue)
    linkedid: str
    channel: str
    dest_channel: str
    dest_uniqueid: str
    queue: str
    interface: str
    member_name: str
    caller_num: str = ""  # of the calling channel
    caller_name: str = ""


@dataclass(frozen=True, slots=True)
class AgentConnect:
    at: datetime
    uniqueid: str
    linkedid: str
    channel: str
    dest_channel: str
    dest_uniqueid: str
    queue: str
    interface: str
    hold_s: int


@dataclass(frozen=True, slots=True)
class AgentComplete:
    at: datetime
    uniqueid: str
    linkedid: str
    channel: str
    dest_channel: str  # Asterisk sometimes omits it; then `interface` identifies the agent
    dest_uniqueid: str
    queue: str
    interface: str
    talk_s: int
    reason: str


@dataclass(frozen=True, slots=True)
class AgentRingNoAnswer:
    at: datetime
    uniqueid: str
    linkedid: str
    channel: str
    dest_channel: str
    dest_uniqueid: str
    queue: str
    interface: str


@dataclass(frozen=True, slots=True)
class DialBegin:
    at: datetime
    uniqueid: str  # empty for an originate (no calling channel)
    linkedid: str
    channel: str
    dest_channel: str
    dest_uniqueid: str
    dest_linkedid: str
    caller_num: str = ""  # of the calling channel
    caller_name: str = ""
    exten: str = ""  # the calling channel's extension: the number it dialled


@dataclass(frozen=True, slots=True)
class DialEnd:
    at: datetime
    uniqueid: str
    linkedid: str
    channel: str
    dest_channel: str
    dest_uniqueid: str
    dest_linkedid: str
    status: str  # ANSWER, CANCEL, NOANSWER, BUSY, CONGESTION, CHANUNAVAIL, ...


@dataclass(frozen=True, slots=True)
class BridgeEnter:
    at: datetime
    uniqueid: str
    linkedid: str
    channel: str
    bridge_id: str


@dataclass(frozen=True, slots=True)
class BridgeLeave:
    at: datetime
    uniqueid: str
    linkedid: str
    channel: str
    bridge_id: str


@dataclass(frozen=True, slots=True)
class BlindTransfer:
    at: datetime
    success: bool
    transferer_channel: str
    transferer_uniqueid: str
    transferer_linkedid: str
    transferee_channel: str
    transferee_uniqueid: str
    transferee_linkedid: str
    extension: str
    context: str


@dataclass(frozen=True, slots=True)
class AttendedTransfer:
    at: datetime
    success: bool
    orig_transferer_channel: str
    orig_transferer_uniqueid: str
    orig_transferer_linkedid: str
    second_transferer_channel: str
    second_transferer_uniqueid: str
    second_transferer_linkedid: str
    transferee_channel: str
    transferee_uniqueid: str
    transferee_linkedid: str
    target_channel: str
    target_uniqueid: str
    target_linkedid: str
    dest_type: str


@dataclass(frozen=True, slots=True)
class Hangup:
    at: datetime
    uniqueid: str
    linkedid: str
    channel: str
    cause: int
    cause_txt: str


@dataclass(frozen=True, slots=True)
class CdrRecord:
    """A `Cdr` event. It has `UniqueID` but no Linkedid: map it through the channel."""

    at: datetime
    uniqueid: str
    channel: str
    destination_channel: str
    source: str
    destination: str
    disposition: str
    billable_s: int
    duration_s: int
    start_time: str
    answer_time: str
    end_time: str
    last_application: str = ""
    last_data: str = ""


@dataclass(frozen=True, slots=True)
class ChannelListed:
    """One `CoreShowChannel` entry of a `CoreShowChannels` listing (resync)."""

    at: datetime
    uniqueid: str
    linkedid: str
    channel: str
    state: int
    caller_num: str
    caller_name: str
    exten: str
    context: str
    application: str
    bridge_id: str
    duration_s: int
    action_id: str
    application_data: str = ""  # e.g. `support,t,,,30` for Queue, `(Outgoing Line)` for AppQueue


@dataclass(frozen=True, slots=True)
class QueueEntryListed:
    """One `QueueEntry` of a `QueueStatus` listing: a caller waiting in a queue."""

    at: datetime
    queue: str
    uniqueid: str
    channel: str
    position: int
    wait_s: int
    caller_num: str
    caller_name: str
    action_id: str


@dataclass(frozen=True, slots=True)
class QueueMemberListed:
    """One `QueueMember` of a `QueueStatus` listing."""

    at: datetime
    queue: str
    interface: str
    name: str
    status: int
    paused: bool
    in_call: bool
    action_id: str


PbxEvent = (
    NewChannel
    | ChannelStateChanged
    | CallerIdChanged
    | RecordingSet
    | QueueCallerJoin
    | QueueCallerLeave
    | QueueCallerAbandon
    | HangupRequested
    | AgentCalled
    | AgentConnect
    | AgentComplete
    | AgentRingNoAnswer
    | DialBegin
    | DialEnd
    | BridgeEnter
    | BridgeLeave
    | BlindTransfer
    | AttendedTransfer
    | Hangup
    | CdrRecord
    | ChannelListed
    | QueueEntryListed
    | QueueMemberListed
)


PBX_EVENT_TYPES: tuple[type, ...] = get_args(PbxEvent)


@dataclass(frozen=True, slots=True)
class PbxSnapshot:
    """What the PBX lists at a (re)connect: its channels (`CoreShowChannels`) and the callers
    waiting in queues (`QueueStatus`). `complete=False`: the channel listing was refused, so an
    empty one says nothing about which calls ended."""

    at: datetime
    channels: tuple[ChannelListed, ...]
    queue_entries: tuple[QueueEntryListed, ...]
    complete: bool = True
