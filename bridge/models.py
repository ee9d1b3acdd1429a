"""Domain types shared across features.

These are the nouns every package speaks: a customer as routing sees it, the card a
screen-pop carries, a routing decision, and the call events the tracker emits to its
consumers (pop hub, call-record writer, metrics).
They are plain frozen dataclasses with no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args


@dataclass(frozen=True, slots=True)
class Customer:
    """A CRM customer as routing and pops need it (the full card is loaded separately)."""

    id: str
    name: str
    tags: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)
    owner: str | None = None  # agent id that owns the customer, if any


@dataclass(frozen=True, slots=True)
class CustomerCard:
    """The customer card a screen-pop carries: the built-in CRM loads it
    (`bridge.pops.card.load_card`), a prebuilt connector builds it from its CRM's records.
    Values are JSON-ready data (numbers, ISO-8601 strings); rows are bounded by whoever
    loads them."""

    id: str
    name: str
    tags: tuple[str, ...] = ()
    owner: str | None = None  # agent id owning the customer
    attributes: Mapping[str, Any] = field(default_factory=dict)
    orders: tuple[Mapping[str, Any], ...] = ()
    contracts: tuple[Mapping[str, Any], ...] = ()
    marketing: tuple[Mapping[str, Any], ...] = ()
    history: tuple[Mapping[str, Any], ...] = ()
    last_outcome: Mapping[str, Any] | None = None  # the newest service-history row, short


@dataclass(frozen=True, slots=True)
class InboundCall:
    """What is known about a call when the PBX asks where it should go."""

    raw_caller: str  # caller ID exactly as the PBX gave it (already made safe text)
    caller: str | None  # E.164 when the caller ID is a real number, else None
    caller_name: str
    did: str  # the dialled number (agi_extension / ARI dialplan exten)
    at: datetime  # timezone-aware
    channel: str = ""
    uniqueid: str = ""
    linkedid: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    queue: str
    priority: int
    rule: str  # the matching rule's name, or "default"
    customer: Customer | None
    degraded: bool = False  # the CRM did not answer in time; default route used


# --- call events emitted by the tracker -------------------------------------------------
# `device` is the agent's extension as `[pbx] device_pattern` extracts it from a channel or
# queue interface; consumers map it to agent ids. `call_id` is the call's Linkedid.


@dataclass(frozen=True, slots=True)
class CallRinging:
    call_id: str
    device: str
    at: datetime
    caller: str  # raw caller ID number as seen on the caller's channel
    caller_name: str
    queue: str | None
    channel: str  # the ringing agent channel
    # A transfer or a consultation: the DEVICE of the agent handing the call over (consumers
    # map it to the agent id, like `device`); None for a call rung from the queue.
    transfer_from: str | None = None
    # A call between agents (one agent's phone dialled another's): no customer on it.
    internal: bool = False


@dataclass(frozen=True, slots=True)
class CallDialing:
    """An agent's side of the call (its phone, or an originate that rang it) dials a number
    that is no agent's: an outbound customer call. `number` is the number as dialled; the
    customer is found by it, never by the agent's own caller ID."""

    call_id: str
    device: str  # the agent placing the call
    at: datetime
    number: str
    channel: str  # the far end's channel (the trunk leg)


@dataclass(frozen=True, slots=True)
class CallAnswered:
    call_id: str
    device: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CallRetracted:
    call_id: str
    device: str
    at: datetime
    reason: Literal["answered_elsewhere", "caller_gone", "no_answer", "transferred"]


@dataclass(frozen=True, slots=True)
class CallTransferred:
    call_id: str
    from_device: str | None
    to_device: str
    at: datetime


@dataclass(frozen=True, slots=True)
class AgentLeg:
    device: str
    answered_at: datetime
    talk_s: int


@dataclass(frozen=True, slots=True)
class CallSummary:
    """Everything the tracker concluded about a finished call."""

    call_id: str
    caller: str
    caller_name: str
    did: str
    queue: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    duration_s: int
    talk_s: int
    outcome: Literal["answered", "abandoned", "unanswered"]
    agents: tuple[AgentLeg, ...]
    recording_path: str | None
    uniqueids: tuple[str, ...] = ()  # every channel Uniqueid seen for the call
    inferred: tuple[str, ...] = ()  # fields not observed live (e.g. completed from Cdr or resync)
    # inbound: came in from outside; outbound: an agent's side dialled a number that is no
    # agent's (`caller` is then the number dialled); internal: agents only, no customer.
    direction: Literal["inbound", "outbound", "internal"] = "inbound"


@dataclass(frozen=True, slots=True)
class CallEnded:
    call_id: str
    at: datetime
    summary: CallSummary


CallEvent = CallRinging | CallDialing | CallAnswered | CallRetracted | CallTransferred | CallEnded
CALL_EVENT_TYPES: tuple[type, ...] = get_args(CallEvent)  # e.g. for `EventBus.subscribe`
