"""The per-call data: what the tracker knows of a call (`Call`, its `Leg`s and `Channel`s),
and the `LiveCall`/`LiveLeg` views of it that its consumers read."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

RetractReason = Literal["answered_elsewhere", "caller_gone", "no_answer", "transferred"]


@dataclass(frozen=True, slots=True)
class LiveLeg:
    """`state` is the leg toward the customer: a consulted agent stays "ringing" (with
    `transfer_from`) until the transfer completes, whether or not it picked up."""

    device: str
    channel: str
    state: Literal["ringing", "answered", "away"]  # away: talked, then left the live call
    since: datetime
    transfer_from: str | None = None


@dataclass(frozen=True, slots=True)
class LiveCall:
    """A call in progress, as a reconnecting client needs it."""

    call_id: str
    caller: str
    caller_name: str
    did: str
    queue: str | None
    started_at: datetime
    answered_at: datetime | None
    legs: tuple[LiveLeg, ...]


@dataclass(slots=True)
class Channel:
    uniqueid: str
    name: str
    state: int = 0
    hung_up: bool = False
    hangup_requested: bool = False
    bridge_id: str = ""


@dataclass(slots=True)
class Leg:
    device: str
    channel: str
    uniqueid: str
    queue: str | None
    rang_at: datetime
    state: Literal["ringing", "consulting", "answered", "retracted"] = "ringing"
    answered_at: datetime | None = None  # when it got the customer
    ended_at: datetime | None = None
    talk_queue: int | None = None
    talk_cdr: int | None = None
    talk_endpoint: int | None = None  # the hop's Cdr toward the agent's real device
    answer_inferred: bool = False
    consult: bool = False  # rung by an agent consulting, not (yet) for the customer
    transfer_from: str | None = None  # device handing the call over (transfer, consultation)
    left_bridge: bool = False  # ended_at came from a BridgeLeave, undone if it comes back
    # The real endpoint(s) a Local hop leg led to (names and uniqueids): `Local/1001@from-queue`
    # rings `PJSIP/1001`; what happens to the endpoint happens to the leg.
    endpoints: set[str] = field(default_factory=set)
    own: bool = False  # the agent's side of a call it placed: answered when the far end is


@dataclass(slots=True)
class Call:
    call_id: str
    started_at: datetime
    caller: str = ""
    caller_name: str = ""
    did: str = ""
    queue: str | None = None
    recording: str | None = None
    answered_at: datetime | None = None
    channels: dict[str, Channel] = field(default_factory=dict)
    legs: list[Leg] = field(default_factory=list)
    caller_side: set[str] = field(default_factory=set)  # root, queue and dialling channels
    in_queue: bool = False
    abandoned: bool = False
    queue_timed_out: bool = False  # left the queue unanswered while still on the line
    caller_gone: bool = False
    transfer_from: str | None = None
    transfer_pending: bool = False
    hung_up_at: datetime | None = None
    root_gone_at: datetime | None = None  # the caller's own channel hung up
    aliases: set[str] = field(default_factory=set)  # other Linkedids folded into this call
    end_deadline: datetime | None = None
    inferred: set[str] = field(default_factory=set)
    origin: str | None = None  # the agent device whose side placed the call
    direction: Literal["inbound", "outbound", "internal"] = "inbound"
    dialled: str = ""  # the number an agent's side dialled (outbound)
    far: set[str] = field(default_factory=set)  # the outside party's channels (names, uids)
    far_answered_at: datetime | None = None
    hops: set[str] = field(default_factory=set)  # Local `;1` names that stand for no agent

    def leg_for(self, channel: str, uniqueid: str = "") -> Leg | None:
        for leg in reversed(self.legs):
            if (channel and leg.channel == channel) or (uniqueid and leg.uniqueid == uniqueid):
                return leg
        for leg in reversed(self.legs):
            if (channel and channel in leg.endpoints) or (uniqueid and uniqueid in leg.endpoints):
                return leg
        return None

    def leg_channel_ids(self, *, own: bool = True) -> set[str]:
        return {leg.uniqueid for leg in self.legs if own or not leg.own}


def leg_state(leg: Leg) -> Literal["ringing", "answered", "away"]:
    if leg.state == "ringing":
        return "ringing"
    return "answered" if leg.ended_at is None else "away"


def live_view(call: Call, *, with_away: bool = False) -> LiveCall:
    """The call as a reconnecting client needs it; `with_away` keeps the legs that talked and
    left (a transferer) beside those ringing or answered."""
    legs = tuple(
        LiveLeg(
            leg.device,
            leg.channel,
            leg_state(leg),
            leg.answered_at or leg.rang_at,
            leg.transfer_from,
        )
        for leg in call.legs
        if leg.state != "retracted" and (leg.ended_at is None or with_away)
    )
    return LiveCall(
        call.call_id,
        call.caller,
        call.caller_name,
        call.did,
        call.queue,
        call.started_at,
        call.answered_at,
        legs,
    )
