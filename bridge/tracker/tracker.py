"""The call tracker: PBX events (`bridge.pbx_events`) in, call events out. Pure, no I/O, no clock.

A call is everything sharing one Asterisk Linkedid. Within it we know:
- the *root* channel (Uniqueid == Linkedid: the trunk leg on a real PBX), which gives the
  caller ID and the dialled number (its Exten);
- *legs*: channels the call dialled (``AgentCalled``/``DialBegin`` DestChannel) whose name or
  queue Interface yields an agent device through ``[pbx] device_pattern``.

Emitted, in order of cause: `CallRinging` when a leg starts ringing; `CallAnswered` when a leg
answers (``DialEnd ANSWER`` or ``AgentConnect``); `CallRetracted` when a ringing leg stops
without answering; `CallTransferred` when, after a blind transfer, another device answers the
call (or at once for an attended transfer); `CallEnded` once per call.

Transfers and consultations. A channel that is not the caller's and dials an agent while the
call is answered is a *consultation* (``Atxfer`` opens ``Local/<ext>@<ctx>`` with the call's
Linkedid; a SIP phone's consultation is a new call whose first channel is the agent's phone,
which joins the customer's call at once). The consulted device gets `CallRinging` with
``transfer_from`` (the consulting agent's device) and the customer's caller ID; its answer is
not the customer's, so it emits nothing. ``AttendedTransfer`` completes it: `CallTransferred`
once, then the target's `CallAnswered`, stamped at the completion. A contact centre counts
talk time with the customer: the target's runs from the completion (the caller's Cdr toward
it, else timestamps); the transferer's to the completion (the queue's ``TalkTime``, which
includes the consultation while the customer waits on hold for it), so no second is counted
twice. A consultation that ends without a transfer retracts its ringing. When a transfer
joins a call we tracked on its own (another Linkedid), that call's legs are retracted
(``transferred``) and re-rung on the customer's call; it leaves no record.

Local hops (FreePBX's ``Local/1001@from-queue/n``, ring groups, follow-me). A Local channel's
``;2`` half runs dialplan for its ``;1`` half. When the ``;2`` half of a leg dials that agent's
own device, the device is the leg's endpoint: its answer, hangup and Cdr are the leg's. A
dialled Local hop that maps to no agent is never a leg; its ``;2`` half dials on the caller's
behalf, and its extension (a ring group's number) names the call's queue when app_queue gave
none. Which extensions are agents is `is_agent` (the roster).

Calls agents place. When a call's first channel is an agent's device (its phone, or an
originate named after it), the agent's side is an own leg that never rings; dialling a number
that is no agent's emits `CallDialing` (direction outbound, the customer found by the number
dialled) and the far end's answer is the agent's `CallAnswered`; dialling another agent makes
the call internal (its ringing carries ``internal``, no customer).

Durations. ``duration_s`` is the caller's own channel lifetime (the root channel, else the
call's), never stretched to the talk figures. A recording path is kept only when someone
answered: MixMonitor runs from before ``Queue()``, so an unanswered call leaves an empty file.

When does a call end? When every channel seen for it has hung up. A leg's talk time comes from
the queue's own ``AgentComplete TalkTime``, else the ``Cdr BillableSeconds`` of the caller's
leg toward that agent (``Cdr DestinationChannel`` = the agent channel), else timestamps. The
queue figure comes first because a caller leg that the dialplan answered before ``Queue()``
bills the waiting time too (see concurrent-8: 8 s billed for 2 s of talk). Asterisk sends the
caller's Cdrs *after* its Hangup, so when an answered leg still lacks a figure and Cdrs are
flowing on this link, the end is held for up to `cdr_grace_s`; `tick(now)` releases held calls
whose Cdrs never come (their talk time is then marked inferred).

After an AMI reconnect `resync()` compares the live channel list with what we know: calls whose
channels all vanished end with ``ended_at`` inferred, new ones are adopted (a dialled agent
channel is listed as ``AppQueue``/``AppDial``; the caller runs ``Queue``/``Dial``, whose data
names the queue). A leg missed anyway is learnt from the first event that names it
(``AgentConnect``, ``DialEnd ANSWER``, a ``BridgeEnter`` into the caller's bridge). A call
still open after `max_call_s` (its Hangups were lost) is closed by `tick` with ``ended_at``
inferred, so state stays bounded.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from bridge import pbx_events as ev
from bridge.devices import DeviceMatcher
from bridge.models import (
    AgentLeg,
    CallAnswered,
    CallDialing,
    CallEnded,
    CallEvent,
    CallRetracted,
    CallRinging,
    CallSummary,
    CallTransferred,
)

__all__ = ["CallTracker", "LiveCall", "LiveLeg"]

UP = 6  # AST_STATE_UP
RINGING_STATES = {4, 5}  # AST_STATE_RING, AST_STATE_RINGING
ANSWERED_ELSEWHERE = 26  # AST_CAUSE_ANSWERED_ELSEWHERE
NO_ANSWER_CAUSES = {17, 18, 19, 21}  # busy, no user response, no answer, rejected
NO_ANSWER_DIALSTATUS = {"NOANSWER", "BUSY", "CONGESTION", "CHANUNAVAIL"}
# CoreShowChannel Application of a channel, as a real Asterisk 22 lists them while a queue
# call rings and talks (tests/fixtures/asterisk-traces/restart): the channel app_queue or
# app_dial dialled keeps `AppQueue`/`AppDial` `(Outgoing Line)` until it hangs up; the caller
# runs `Queue` (data `support,t,,,30`) or `Dial`.
DIALLED_APPS = {"appdial", "appqueue"}
DIALLING_APPS = {"queue", "dial"}
MAX_REMEMBERED = 4096  # ended calls / hung-up channels kept to ignore late events

# A Local channel's half: `Local/<ext>@<context>-<seq>;1` (what the dialler holds) and `;2`
# (what runs the dialplan at <ext>@<context>). core_local.c names them so.
_LOCAL_HALF = re.compile(r"^(Local/[^;]+);([12])$")

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
class _Channel:
    uniqueid: str
    name: str
    state: int = 0
    hung_up: bool = False
    hangup_requested: bool = False
    bridge_id: str = ""


@dataclass(slots=True)
class _Leg:
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
class _Call:
    call_id: str
    started_at: datetime
    caller: str = ""
    caller_name: str = ""
    did: str = ""
    queue: str | None = None
    recording: str | None = None
    answered_at: datetime | None = None
    channels: dict[str, _Channel] = field(default_factory=dict)
    legs: list[_Leg] = field(default_factory=list)
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

    def leg_for(self, channel: str, uniqueid: str = "") -> _Leg | None:
        for leg in reversed(self.legs):
            if (channel and leg.channel == channel) or (uniqueid and leg.uniqueid == uniqueid):
                return leg
        for leg in reversed(self.legs):
            if (channel and channel in leg.endpoints) or (uniqueid and uniqueid in leg.endpoints):
                return leg
        return None

    def leg_channel_ids(self, *, own: bool = True) -> set[str]:
        return {leg.uniqueid for leg in self.legs if own or not leg.own}


class CallTracker:
    """A state machine keyed by Linkedid. `feed` one PBX event, get call events back."""

    def __init__(
        self,
        device_pattern: DeviceMatcher,
        *,
        cdr_grace_s: float = 3.0,
        expect_cdr: bool | None = None,
        max_call_s: float = 12 * 3600,
        is_agent: Callable[[str], bool] | None = None,
    ) -> None:
        self.device_pattern = device_pattern
        # Which extensions are agents (the roster). Without it every extension the pattern
        # extracts counts, and no call is taken for one an agent placed.
        self.is_agent = is_agent
        self.cdr_grace = timedelta(seconds=cdr_grace_s)
        # A call older than this whose Hangups we never saw (events lost on a live link that
        # never dropped) is ended by `tick`, so state cannot grow without bound.
        self.max_call_age = timedelta(seconds=max_call_s)
        # None: not known yet. Held calls wait for Cdrs until one grace period passes with
        # no Cdr ever seen; from then on this tracker stops waiting.
        self._expect_cdr = expect_cdr
        self._calls: dict[str, _Call] = {}
        self._chan_call: dict[str, str] = {}  # channel uniqueid -> call id
        self._ended: OrderedDict[str, None] = OrderedDict()  # recently ended call ids
        self._gone: OrderedDict[str, None] = OrderedDict()  # recently hung-up uniqueids
        # Linkedid of a consultation placed from an agent's phone -> the customer's call id.
        self._alias: dict[str, str] = {}
        # device -> call id where it last answered the customer (checked on use, so stale
        # entries cost nothing); bounded by the number of devices.
        self._busy: dict[str, str] = {}

    # --- public API ------------------------------------------------------------------------

    def device_of(self, name: str) -> str | None:
        """The agent extension a channel or interface name carries, if any."""
        if not name:
            return None
        m = self.device_pattern.match(name)
        if m is None:
            return None
        ext = m.group("ext")
        if not ext or (self.is_agent is not None and not self.is_agent(ext)):
            return None
        return ext

    def feed(self, event: ev.PbxEvent) -> list[CallEvent]:
        handler = _DISPATCH.get(type(event))
        if handler is None:
            return []
        out: list[CallEvent] = []
        handler(self, event, out)
        return out

    def tick(self, now: datetime) -> list[CallEvent]:
        """Release calls whose end waited for Cdrs that did not come in time, and end calls
        older than `max_call_s` (their Hangups were lost)."""
        out: list[CallEvent] = []
        for call in list(self._calls.values()):
            if call.hung_up_at is None and now - call.started_at > self.max_call_age:
                for chan in list(call.channels.values()):
                    self._channel_gone(call, chan, 0, "", now, out, inferred=True)
                call.inferred.add("ended_at")
                self._finish(call, out)
                continue
            if call.end_deadline is not None and now >= call.end_deadline:
                if self._expect_cdr is None:
                    # A whole grace period after a call and no Cdr ever: cdr_manager is off
                    # or this AMI user may not read the cdr class. Stop waiting for them.
                    self._expect_cdr = False
                self._finish(call, out)
        return out

    def flush(self) -> list[CallEvent]:
        """End every held call now (shutdown, end of a replay)."""
        out: list[CallEvent] = []
        for call in list(self._calls.values()):
            if call.end_deadline is not None:
                self._finish(call, out)
        return out

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    def snapshot(self) -> list[LiveCall]:
        return [self._live(call) for call in self._calls.values() if call.hung_up_at is None]

    def view(self, call_id: str) -> LiveCall | None:
        """The call as its consumers see it now, with the legs that talked and left ("away",
        e.g. a transferer) beside those ringing or answered; None once ended or unknown."""
        call = self._calls.get(call_id)
        if call is None or call.hung_up_at is not None:
            return None
        return self._live(call, with_away=True)

    def calls_for_device(self, device: str) -> list[LiveCall]:
        """Calls ringing or answered on `device` right now."""
        return [live for live in self.snapshot() if any(leg.device == device for leg in live.legs)]

    def catch_up(self, device: str) -> list[CallEvent]:
        """Events that bring a (re)connecting client of `device` up to date."""
        out: list[CallEvent] = []
        for call in self._calls.values():
            if call.hung_up_at is not None:
                continue
            for leg in call.legs:
                if leg.device != device or leg.state == "retracted" or leg.ended_at:
                    continue
                out.append(self._ringing(call, leg))
                if leg.state == "answered" and leg.answered_at is not None:
                    out.append(CallAnswered(call.call_id, device, leg.answered_at))
        return out

    def resync(
        self,
        channels: Iterable[ev.ChannelListed],
        queue_entries: Iterable[ev.QueueEntryListed] = (),
        *,
        now: datetime,
        complete: bool = True,
    ) -> list[CallEvent]:
        """Rebuild live state from a `CoreShowChannels` + `QueueStatus` listing.

        `complete=False`: the PBX refused the channel listing (an AMI user without a write
        class), so an empty one says nothing: calls in progress are kept as they were
        rather than all ended at the reconnect; one whose end fell in the gap is closed
        after `max_call_s` and rebuilt meanwhile by reconciliation."""
        out: list[CallEvent] = []
        listed = [c for c in channels if c.uniqueid and c.uniqueid not in self._gone]
        alive = {c.uniqueid: c for c in listed}
        entries = {q.uniqueid: q for q in queue_entries if q.uniqueid}
        # 1. What vanished while the link was down.
        for call in list(self._calls.values()) if complete else ():
            if call.hung_up_at is not None:
                continue
            for chan in list(call.channels.values()):
                if not chan.hung_up and chan.uniqueid not in alive:
                    self._channel_gone(call, chan, 0, "", now, out, inferred=True)
            if call.hung_up_at is not None:
                call.inferred.add("ended_at")
                self._finish(call, out)
        # 2. What we did not know about, and state we missed: first every channel and the
        # caller's side (a listing comes in no useful order), then the agents' legs.
        fresh: list[tuple[_Call, ev.ChannelListed]] = []
        for item in listed:
            owner = self._adopt_listed(item, entries, now, fresh)
            entry = entries.get(item.uniqueid)
            if owner is not None and entry is not None:
                owner.queue = owner.queue or entry.queue or None
                owner.in_queue = True
                if not owner.caller:
                    self._set_caller(owner, entry.caller_num, entry.caller_name)
        for owner, item in fresh:
            device = self.device_of(item.channel)
            if device is None or item.uniqueid in owner.caller_side:
                continue
            with_caller = bool(item.bridge_id) and any(
                c.bridge_id == item.bridge_id
                for c in owner.channels.values()
                if c.uniqueid in owner.caller_side
            )
            dialled = item.application.lower() in DIALLED_APPS
            if (dialled or with_caller) and owner.leg_for(item.channel, item.uniqueid) is None:
                new_leg = _Leg(device, item.channel, item.uniqueid, owner.queue, now)
                owner.legs.append(new_leg)
                out.append(self._ringing(owner, new_leg))
        for item in listed:
            found = self._calls.get(self._chan_call.get(item.uniqueid, ""))
            ringing = found.leg_for(item.channel, item.uniqueid) if found is not None else None
            if found is None or ringing is None or item.state != UP:
                continue
            if ringing.state == "ringing":  # up already: it answered while we were away
                ringing.answer_inferred = True
                self._answer(found, ringing, now, out)
        return out

    # --- internals -------------------------------------------------------------------------

    def _adopt_listed(
        self,
        item: ev.ChannelListed,
        entries: dict[str, ev.QueueEntryListed],
        now: datetime,
        fresh: list[tuple[_Call, ev.ChannelListed]],
    ) -> _Call | None:
        """The call a listed channel belongs to, learning the channel and the caller's side."""
        call_id = self._chan_call.get(item.uniqueid) or self._alias.get(
            item.linkedid, item.linkedid
        )
        if call_id in self._ended:
            return None
        call = self._calls.get(call_id)
        if call is None:
            call = self._new_call(call_id, now - timedelta(seconds=item.duration_s))
            call.inferred.add("started_at")
        chan = call.channels.get(item.uniqueid)
        if chan is None:
            chan = self._add_channel(call, item.uniqueid, item.channel, item.state)
            fresh.append((call, item))
            app = item.application.lower()
            if item.uniqueid == call.call_id or item.uniqueid in entries or app in DIALLING_APPS:
                call.caller_side.add(item.uniqueid)
                self._set_caller(call, item.caller_num, item.caller_name)
                if item.uniqueid == call.call_id and not call.did:
                    call.did = item.exten
            if app == "queue" and not call.queue:
                call.queue = item.application_data.split(",")[0].strip() or None
        chan.state = item.state
        chan.bridge_id = item.bridge_id
        return call

    def _remember(self, memory: OrderedDict[str, None], key: str) -> None:
        memory[key] = None
        memory.move_to_end(key)
        while len(memory) > MAX_REMEMBERED:
            memory.popitem(last=False)

    def _new_call(self, call_id: str, at: datetime) -> _Call:
        call = _Call(call_id=call_id, started_at=at)
        self._calls[call_id] = call
        return call

    def _add_channel(self, call: _Call, uniqueid: str, name: str, state: int) -> _Channel:
        chan = _Channel(uniqueid, name, state)
        call.channels[uniqueid] = chan
        self._chan_call[uniqueid] = call.call_id
        return chan

    def _call_for(self, uniqueid: str, linkedid: str) -> _Call | None:
        call_id = self._chan_call.get(uniqueid)
        if call_id is None:
            call_id = self._alias.get(linkedid, linkedid)
        return self._calls.get(call_id)

    def _channel_of(self, uniqueid: str, linkedid: str, name: str) -> tuple[_Call, _Channel] | None:
        """The call and channel an event is about; adopts unknown channels of known calls."""
        if uniqueid in self._gone:
            return None
        call = self._call_for(uniqueid, linkedid)
        if call is None or call.hung_up_at is not None:
            return None
        chan = call.channels.get(uniqueid)
        if chan is None:
            chan = self._add_channel(call, uniqueid, name, 0)
        return call, chan

    def _talking(self, call: _Call) -> list[_Leg]:
        """Legs talking to the customer right now."""
        return [
            leg
            for leg in call.legs
            if leg.state == "answered" and not leg.consult and leg.ended_at is None
        ]

    def _serving(self, call: _Call) -> list[_Leg]:
        """Legs talking to the customer, or stepped out of its bridge without hanging up: an
        Atxfer moves the agent's channel into the consultation bridge, and Asterisk 22 may
        send that BridgeLeave before the consultation's DialBegin (seen live on the lab)."""
        return [
            leg
            for leg in call.legs
            if leg.state == "answered"
            and not leg.consult
            and (leg.ended_at is None or (leg.left_bridge and not self._leg_hung_up(call, leg)))
        ]

    @staticmethod
    def _leg_hung_up(call: _Call, leg: _Leg) -> bool:
        chan = call.channels.get(leg.uniqueid)
        return chan is None or chan.hung_up

    def _consulting_agent(self, call: _Call, channel: str) -> str | None:
        """Who is consulting, when a channel that is not the caller's dials out of an answered
        call: the agent whose device the dialling channel names, else the latest to answer."""
        talking = self._serving(call)
        if not talking:
            return None
        device = self.device_of(channel)
        if any(leg.device == device for leg in talking):
            return device
        return max(talking, key=lambda leg: leg.answered_at or leg.rang_at).device

    def _consulted_from(self, channel: str, linkedid: str) -> _Call | None:
        """A new call whose first channel is an agent's phone that is talking to a customer is
        that agent consulting from the phone (customer on hold): it joins the customer's call,
        so the consulted agent is popped with the customer's card."""
        device = self.device_of(channel)
        call = self._calls.get(self._busy.get(device or "", ""))
        if call is None or call.hung_up_at is not None:
            return None
        if not any(leg.device == device for leg in self._talking(call)):
            return None
        self._alias[linkedid] = call.call_id
        call.aliases.add(linkedid)
        return call

    @staticmethod
    def _set_caller(call: _Call, num: str, name: str) -> None:
        if num:
            call.caller = num
        if name:
            call.caller_name = name

    @staticmethod
    def _fill_caller(call: _Call, uniqueid: str, num: str, name: str) -> None:
        """Caller ID seen on a caller-side channel's event, when no NewCallerid told us."""
        if uniqueid == call.call_id or uniqueid in call.caller_side:
            if not call.caller and num:
                call.caller = num
            if not call.caller_name and name:
                call.caller_name = name

    def _ringing(self, call: _Call, leg: _Leg) -> CallRinging:
        return CallRinging(
            call_id=call.call_id,
            device=leg.device,
            at=leg.rang_at,
            caller=call.caller,
            caller_name=call.caller_name,
            queue=leg.queue or call.queue,
            channel=leg.channel,
            transfer_from=leg.transfer_from,
            internal=call.direction == "internal",
        )

    def _live(self, call: _Call, *, with_away: bool = False) -> LiveCall:
        legs = tuple(
            LiveLeg(
                leg.device,
                leg.channel,
                _leg_state(leg),
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

    # --- event handlers --------------------------------------------------------------------

    def _on_new_channel(self, e: ev.NewChannel, out: list[CallEvent]) -> None:
        if e.linkedid in self._ended or e.uniqueid in self._gone:
            return
        call_id = self._chan_call.get(e.uniqueid) or self._alias.get(e.linkedid, e.linkedid)
        call = self._calls.get(call_id)
        if call is None and e.uniqueid == e.linkedid:
            call = self._consulted_from(e.channel, e.linkedid)
        if call is None:
            call = self._new_call(e.linkedid, e.at)
        elif call.hung_up_at is not None:
            return
        chan = call.channels.get(e.uniqueid)
        if chan is None:
            chan = self._add_channel(call, e.uniqueid, e.channel, e.state)
        chan.state = e.state
        if e.uniqueid == call.call_id:
            call.caller_side.add(e.uniqueid)
            self._set_caller(call, e.caller_num, e.caller_name)
            call.did = call.did or e.exten
            if self.is_agent is not None and call.origin is None and not call.legs:
                # The call's first channel is an agent's phone (or an originate named after
                # the agent, `Local/1001@from-internal`): the agent's side places this call.
                call.origin = self.device_of(e.channel)
                if call.origin is not None:
                    own = _Leg(call.origin, e.channel, e.uniqueid, None, e.at)
                    own.own = True
                    call.legs.append(own)

    def _on_state(self, e: ev.ChannelStateChanged, out: list[CallEvent]) -> None:
        found = self._channel_of(e.uniqueid, e.linkedid, e.channel)
        if found is not None:
            found[1].state = e.state
            self._fill_caller(found[0], e.uniqueid, e.caller_num, e.caller_name)

    def _on_callerid(self, e: ev.CallerIdChanged, out: list[CallEvent]) -> None:
        found = self._channel_of(e.uniqueid, e.linkedid, e.channel)
        if found is not None and e.uniqueid == found[0].call_id:
            self._set_caller(found[0], e.caller_num, e.caller_name)

    def _on_recording(self, e: ev.RecordingSet, out: list[CallEvent]) -> None:
        found = self._channel_of(e.uniqueid, e.linkedid, e.channel)
        if found is None:
            return
        call = found[0]
        # An agent's own side (its phone placing the call) records the customer call too.
        if call.recording is None and e.uniqueid not in call.leg_channel_ids(own=False):
            call.recording = e.path

    def _on_queue_join(self, e: ev.QueueCallerJoin, out: list[CallEvent]) -> None:
        found = self._channel_of(e.uniqueid, e.linkedid, e.channel)
        if found is not None:
            call = found[0]
            call.queue = call.queue or e.queue or None
            call.in_queue = True
            call.caller_side.add(e.uniqueid)
            self._fill_caller(call, e.uniqueid, e.caller_num, e.caller_name)

    def _on_queue_leave(self, e: ev.QueueCallerLeave, out: list[CallEvent]) -> None:
        found = self._channel_of(e.uniqueid, e.linkedid, e.channel)
        if found is not None:
            found[0].in_queue = False

    def _on_hangup_request(self, e: ev.HangupRequested, out: list[CallEvent]) -> None:
        found = self._channel_of(e.uniqueid, e.linkedid, e.channel)
        if found is not None:
            found[1].hangup_requested = True

    def _on_queue_abandon(self, e: ev.QueueCallerAbandon, out: list[CallEvent]) -> None:
        """The caller hung up in the queue, or the queue timed out (Asterisk reports both as
        QueueCallerAbandon); a HangupRequest on the queued channel first tells them apart."""
        found = self._channel_of(e.uniqueid, e.linkedid, e.channel)
        if found is None:
            return
        call, channel = found
        if channel.hangup_requested:
            call.abandoned = True
            call.caller_gone = True
        else:
            call.queue_timed_out = True

    def _start_leg(
        self,
        uniqueid: str,
        linkedid: str,
        channel: str,
        dest_channel: str,
        dest_uniqueid: str,
        device_name: str,
        queue: str | None,
        at: datetime,
        out: list[CallEvent],
        caller: tuple[str, str] = ("", ""),
        exten: str = "",
    ) -> None:
        if not uniqueid or not dest_channel:
            return  # an originate: no calling channel, nobody is being called by the call
        found = self._channel_of(uniqueid, linkedid, channel)
        if found is None:
            return
        call = found[0]
        device = self.device_of(device_name) or self.device_of(dest_channel)
        via = self._hop_leg(call, channel)
        if via is not None and device == via.device:
            # The Local hop of a leg dials the agent's real device (FreePBX's
            # `Local/1001@from-queue/n` -> `PJSIP/1001`): the same leg, now with its endpoint.
            via.endpoints.update(x for x in (dest_channel, dest_uniqueid) if x)
            if dest_uniqueid and dest_uniqueid not in call.channels:
                self._add_channel(call, dest_uniqueid, dest_channel, 0)
            return
        consult_from = None
        on_hop = via is not None or self._partner_on_caller_side(call, channel)
        if not on_hop and uniqueid != call.call_id and uniqueid not in call.caller_side:
            consult_from = self._consulting_agent(call, channel)
        if consult_from is None:
            call.caller_side.add(uniqueid)
            self._fill_caller(call, uniqueid, *caller)
        if call.leg_for(dest_channel, dest_uniqueid) is not None:
            return
        if device is None:
            if consult_from is None:
                self._far_dial(call, dest_channel, dest_uniqueid, exten, at, out, via)
            return
        if device == consult_from:
            return
        leg = _Leg(device, dest_channel, dest_uniqueid, queue, at)
        if consult_from is not None:
            leg.consult = True
            leg.transfer_from = consult_from
        elif call.transfer_pending:
            leg.transfer_from = call.transfer_from
        elif call.origin is not None and call.direction == "inbound":
            call.direction = "internal"  # an agent's side dialled another agent
        call.legs.append(leg)
        hop = _local_partner(channel, "2")
        if hop is not None and self.device_of(hop) == device:
            # A Local hop we saw no dial of (an Atxfer's consultation): it stands for the leg.
            leg.endpoints.update(c.name for c in call.channels.values() if c.name == hop)
            leg.endpoints.add(hop)
        if dest_uniqueid and dest_uniqueid not in call.channels:
            self._add_channel(call, dest_uniqueid, dest_channel, 0)
        elif dest_uniqueid:
            # The dialled channel may carry another Linkedid (attended transfers); it is ours.
            self._chan_call[dest_uniqueid] = call.call_id
        out.append(self._ringing(call, leg))

    def _hop_leg(self, call: _Call, channel: str) -> _Leg | None:
        """The leg whose Local hop `channel` runs: the `;2` half of a leg's `;1` channel."""
        partner = _local_partner(channel, "2")
        if partner is None:
            return None
        for leg in reversed(call.legs):
            if leg.channel == partner:
                return leg
        return None

    def _partner_on_caller_side(self, call: _Call, channel: str) -> bool:
        """`channel` is the `;2` half of a Local hop the caller's side dialled (a ring group, a
        follow-me): it dials on the caller's behalf, never as a consulting agent."""
        partner = _local_partner(channel, "2")
        if partner is None:
            return False
        if partner in call.hops:
            return True
        return any(
            c.name == partner and (c.uniqueid in call.caller_side or c.uniqueid == call.call_id)
            for c in call.channels.values()
        )

    def _far_dial(
        self,
        call: _Call,
        dest_channel: str,
        dest_uniqueid: str,
        exten: str,
        at: datetime,
        out: list[CallEvent],
        via: _Leg | None,
    ) -> None:
        """The call dials a party that is no agent: a Local hop standing for a ring group or a
        queue made in dialplan (kept as the call's `queue`), or the outside world."""
        local = _LOCAL_HALF.match(dest_channel)
        if via is None and call.origin is None and local is not None and local.group(2) == "1":
            call.hops.add(dest_channel)
            if call.queue is None:
                call.queue = _local_ext(dest_channel) or None
            return
        call.far.update(x for x in (dest_channel, dest_uniqueid) if x)
        if dest_uniqueid and dest_uniqueid not in call.channels:
            self._add_channel(call, dest_uniqueid, dest_channel, 0)
        if call.origin is None or call.dialled:
            return
        call.direction = "outbound"
        call.dialled = exten or _local_ext(dest_channel)
        out.append(CallDialing(call.call_id, call.origin, at, call.dialled, dest_channel))

    def _own_leg(self, call: _Call) -> _Leg | None:
        return next((leg for leg in call.legs if leg.own), None)

    def _on_agent_called(self, e: ev.AgentCalled, out: list[CallEvent]) -> None:
        self._start_leg(
            e.uniqueid,
            e.linkedid,
            e.channel,
            e.dest_channel,
            e.dest_uniqueid,
            e.interface,
            e.queue or None,
            e.at,
            out,
            (e.caller_num, e.caller_name),
        )

    def _on_dial_begin(self, e: ev.DialBegin, out: list[CallEvent]) -> None:
        call = self._call_for(e.uniqueid, e.linkedid)
        queue = call.queue if call is not None and call.in_queue else None
        self._start_leg(
            e.uniqueid,
            e.linkedid,
            e.channel,
            e.dest_channel,
            e.dest_uniqueid,
            "",
            queue,
            e.at,
            out,
            (e.caller_num, e.caller_name),
            e.exten,
        )

    def _answer(
        self, call: _Call, leg: _Leg, at: datetime, out: list[CallEvent], *, own: bool = False
    ) -> None:
        if leg.state != "ringing" or (leg.own and not own):
            return  # an agent's own side picking up is not the call being answered
        if leg.consult:
            leg.state = "consulting"  # talking to the agent, not to the customer: no event
            return
        leg.state = "answered"
        leg.answered_at = at
        if leg.queue is not None or leg.transfer_from is not None or leg.own:
            # An agent serving a customer (not, say, a trunk an outbound call reached): a new
            # call from its phone now is a consultation (`_consulted_from`).
            self._busy[leg.device] = call.call_id
        if call.answered_at is None:
            call.answered_at = at
        if call.transfer_pending and leg.device != call.transfer_from:
            out.append(CallTransferred(call.call_id, call.transfer_from, leg.device, at))
            call.transfer_pending = False
        out.append(CallAnswered(call.call_id, leg.device, at))
        own_leg = self._own_leg(call) if call.direction == "internal" else None
        if own_leg is not None and own_leg is not leg:
            self._answer(call, own_leg, at, out, own=True)  # the agent who called talks too

    def _retract(
        self, call: _Call, leg: _Leg, reason: RetractReason, at: datetime, out: list[CallEvent]
    ) -> None:
        if leg.state not in ("ringing", "consulting"):
            return
        leg.state = "retracted"
        leg.ended_at = at
        out.append(CallRetracted(call.call_id, leg.device, at, reason))

    def _answered_elsewhere(self, call: _Call, leg: _Leg) -> bool:
        return any(
            other is not leg and other.state == "answered" and other.ended_at is None
            for other in call.legs
        )

    def _on_dial_end(self, e: ev.DialEnd, out: list[CallEvent]) -> None:
        call = self._call_for(e.uniqueid, e.linkedid)
        if call is None or call.hung_up_at is not None:
            return
        leg = call.leg_for(e.dest_channel, e.dest_uniqueid)
        if leg is None and (e.dest_channel in call.far or e.dest_uniqueid in call.far):
            self._far_end(call, e, out)
            return
        if leg is None and e.status == "ANSWER":
            # A leg we never saw ring (events lost, or rung before a restart): learn it here.
            queue = call.queue if call.in_queue else None
            self._start_leg(
                e.uniqueid,
                e.linkedid,
                e.channel,
                e.dest_channel,
                e.dest_uniqueid,
                "",
                queue,
                e.at,
                out,
            )
            leg = call.leg_for(e.dest_channel, e.dest_uniqueid)
        if leg is None:
            return
        if e.status == "ANSWER":
            self._answer(call, leg, e.at, out)
        elif leg.consult:
            reason: RetractReason = (
                "no_answer" if e.status in NO_ANSWER_DIALSTATUS else "caller_gone"
            )
            self._retract(call, leg, reason, e.at, out)
        elif self._answered_elsewhere(call, leg):
            self._retract(call, leg, "answered_elsewhere", e.at, out)
        elif e.status == "CANCEL" and self._still_up(call, e.dest_uniqueid):
            # app_dial cancels the losers before it reports the winner: the loser's Hangup
            # cause (26, answered elsewhere; else the caller left) says which it was.
            return
        elif e.status in NO_ANSWER_DIALSTATUS:
            self._retract(call, leg, "no_answer", e.at, out)
        else:
            self._retract(call, leg, "caller_gone", e.at, out)

    def _far_end(self, call: _Call, e: ev.DialEnd, out: list[CallEvent]) -> None:
        """The outside party answered or gave up: an outbound call's agent now talks to the
        customer, or the call goes unanswered; a follow-me's mobile answered the caller."""
        own = self._own_leg(call) if call.direction == "outbound" else None
        if e.status == "ANSWER":
            call.far_answered_at = call.far_answered_at or e.at
            if call.answered_at is None:
                call.answered_at = e.at
            if own is not None:
                self._answer(call, own, e.at, out, own=True)
        elif own is not None and own.state == "ringing":
            self._retract(call, own, "no_answer", e.at, out)

    @staticmethod
    def _still_up(call: _Call, uniqueid: str) -> bool:
        chan = call.channels.get(uniqueid)
        return chan is not None and not chan.hung_up

    def _on_agent_noanswer(self, e: ev.AgentRingNoAnswer, out: list[CallEvent]) -> None:
        call = self._call_for(e.uniqueid, e.linkedid)
        if call is not None and call.hung_up_at is None:
            leg = call.leg_for(e.dest_channel, e.dest_uniqueid)
            if leg is not None:
                self._retract(call, leg, "no_answer", e.at, out)

    def _on_agent_connect(self, e: ev.AgentConnect, out: list[CallEvent]) -> None:
        call = self._call_for(e.uniqueid, e.linkedid)
        if call is not None and call.hung_up_at is None:
            leg = call.leg_for(e.dest_channel, e.dest_uniqueid)
            if leg is None:  # first news of this agent: it rang before we were listening
                call.queue = call.queue or e.queue or None
                self._start_leg(
                    e.uniqueid,
                    e.linkedid,
                    e.channel,
                    e.dest_channel,
                    e.dest_uniqueid,
                    e.interface,
                    e.queue or None,
                    e.at,
                    out,
                )
                leg = call.leg_for(e.dest_channel, e.dest_uniqueid)
            if leg is not None:
                self._answer(call, leg, e.at, out)

    def _on_agent_complete(self, e: ev.AgentComplete, out: list[CallEvent]) -> None:
        call = self._call_for(e.uniqueid, e.linkedid)
        if call is None:
            return
        leg = call.leg_for(e.dest_channel, e.dest_uniqueid)
        if leg is None:
            device = self.device_of(e.interface)
            answered = [x for x in call.legs if x.device == device and x.answered_at]
            leg = answered[-1] if answered else None
        if leg is not None and leg.answered_at is not None:
            leg.talk_queue = e.talk_s
            self._maybe_release(call, out)

    def _on_bridge_enter(self, e: ev.BridgeEnter, out: list[CallEvent]) -> None:
        known = self._calls.get(self._chan_call.get(e.uniqueid, ""))
        found = self._channel_of(e.uniqueid, e.linkedid, e.channel)
        if found is None:
            return
        call, chan = found
        chan.bridge_id = e.bridge_id
        leg = call.leg_for(e.channel, e.uniqueid)
        if leg is None and known is None and e.uniqueid not in call.caller_side:
            # A channel first named by its BridgeEnter, joining the caller's bridge: an agent
            # the call reached while we were not listening.
            self._learn_bridged_leg(call, chan, e.at, out)
            return
        if leg is not None and leg.left_bridge:
            # Back in a bridge (a consultation, a Local optimisation): still on the call.
            leg.ended_at = None
            leg.left_bridge = False

    def _learn_bridged_leg(
        self, call: _Call, chan: _Channel, at: datetime, out: list[CallEvent]
    ) -> None:
        device = self.device_of(chan.name)
        with_caller = any(
            c.bridge_id == chan.bridge_id and not c.hung_up
            for c in call.channels.values()
            if c.uniqueid in call.caller_side or c.uniqueid == call.call_id
        )
        if device is None or not with_caller:
            return
        leg = _Leg(device, chan.name, chan.uniqueid, call.queue, at)
        if call.transfer_pending:
            leg.transfer_from = call.transfer_from
        call.legs.append(leg)
        out.append(self._ringing(call, leg))
        self._answer(call, leg, at, out)

    def _on_bridge_leave(self, e: ev.BridgeLeave, out: list[CallEvent]) -> None:
        found = self._channel_of(e.uniqueid, e.linkedid, e.channel)
        if found is None:
            return
        found[1].bridge_id = ""
        leg = found[0].leg_for(e.channel, e.uniqueid)
        if leg is not None and leg.state == "answered" and leg.ended_at is None:
            leg.ended_at = e.at
            leg.left_bridge = True

    def _on_blind_transfer(self, e: ev.BlindTransfer, out: list[CallEvent]) -> None:
        if not e.success:
            return
        call = self._call_for(e.transferee_uniqueid, e.transferee_linkedid) or self._call_for(
            e.transferer_uniqueid, e.transferer_linkedid
        )
        if call is None:
            return
        leg = call.leg_for(e.transferer_channel, e.transferer_uniqueid)
        call.transfer_from = leg.device if leg is not None else None
        call.transfer_pending = True
        if leg is not None and leg.ended_at is None:
            leg.ended_at = e.at

    def _on_attended_transfer(self, e: ev.AttendedTransfer, out: list[CallEvent]) -> None:
        """Completion of a consultation: the consulted agent gets the customer.

        Both kinds name the same parties (main/stasis_bridges.c ``attended_transfer_to_ami``):
        ``OrigTransferer``/``SecondTransferer`` are the transferring agent's two channels,
        ``Transferee`` the peer of the first in its bridge, ``TransferTarget`` the peer of the
        second, when each bridge had one. Which of the two bridges holds the customer depends
        on which dialog the phone sent its REFER on, so the customer's call is found by its
        caller-side channel, not by the field names. A ``Bridge`` merge may list no target at
        all (the Atxfer trace): the consultation legs the transferer opened are the targets.
        """
        if not e.success:
            return
        uids = (
            (e.transferee_uniqueid, e.transferee_linkedid),
            (e.target_uniqueid, e.target_linkedid),
            (e.orig_transferer_uniqueid, e.orig_transferer_linkedid),
            (e.second_transferer_uniqueid, e.second_transferer_linkedid),
        )
        calls: list[_Call] = []
        for uniqueid, linkedid in uids:
            found = self._call_for(uniqueid, linkedid) if uniqueid or linkedid else None
            if found is not None and found.hung_up_at is None and found not in calls:
                calls.append(found)
        if not calls:
            return
        call = next(
            (c for c in calls for u, _ in uids[:2] if u and (u == c.call_id or u in c.caller_side)),
            calls[0],
        )
        transferer = None
        for name, uniqueid in (
            (e.orig_transferer_channel, e.orig_transferer_uniqueid),
            (e.second_transferer_channel, e.second_transferer_uniqueid),
        ):
            leg = call.leg_for(name, uniqueid)
            if leg is not None and not leg.consult:
                transferer = leg
                break
        from_device = (
            transferer.device
            if transferer is not None
            else self.device_of(e.orig_transferer_channel)
            or self.device_of(e.second_transferer_channel)
        )
        for other in calls:
            if other is not call:
                self._absorb(call, other, from_device, e.at, out)
        targets = [
            leg
            for leg in call.legs
            if leg.consult
            and leg.state in ("ringing", "consulting")
            and (from_device is None or leg.transfer_from == from_device)
        ]
        if not targets:
            device = self.device_of(e.target_channel)
            if device is None or device == from_device or e.target_uniqueid in call.caller_side:
                return
            if e.target_uniqueid and e.target_uniqueid not in call.channels:
                self._add_channel(call, e.target_uniqueid, e.target_channel, UP)
            leg = _Leg(device, e.target_channel, e.target_uniqueid, call.queue, e.at, "consulting")
            leg.consult, leg.transfer_from = True, from_device
            call.legs.append(leg)
            targets = [leg]
        if transferer is not None and transferer.ended_at is None:
            transferer.ended_at = e.at
        for leg in targets:
            talking = leg.state == "consulting"
            leg.consult = False
            leg.state = "ringing"
            call.transfer_from = from_device
            call.transfer_pending = True
            if talking:  # a ringing target gets the customer when it answers
                self._answer(call, leg, e.at, out)

    def _absorb(
        self, call: _Call, other: _Call, from_device: str | None, at: datetime, out: list[CallEvent]
    ) -> None:
        """Fold a consultation call we tracked on its own (another Linkedid) into `call`."""
        del self._calls[other.call_id]
        self._remember(self._ended, other.call_id)
        for alias in (other.call_id, *other.aliases):
            self._alias[alias] = call.call_id
            call.aliases.add(alias)
        for uniqueid, chan in other.channels.items():
            call.channels.setdefault(uniqueid, chan)
            self._chan_call[uniqueid] = call.call_id
        for leg in other.legs:
            if leg.state == "retracted" or leg.ended_at is not None:
                continue
            out.append(CallRetracted(other.call_id, leg.device, at, "transferred"))
            if leg.device == from_device:
                continue
            moved = _Leg(leg.device, leg.channel, leg.uniqueid, call.queue, at)
            moved.consult, moved.transfer_from = True, from_device
            moved.state = "consulting" if leg.state != "ringing" else "ringing"
            call.legs.append(moved)
            out.append(self._ringing(call, moved))

    def _on_hangup(self, e: ev.Hangup, out: list[CallEvent]) -> None:
        found = self._channel_of(e.uniqueid, e.linkedid, e.channel)
        if found is None:
            return
        call, chan = found
        self._channel_gone(call, chan, e.cause, e.cause_txt, e.at, out, inferred=False)
        if call.hung_up_at is not None:
            self._maybe_release(call, out, hold=True)

    def _on_cdr(self, e: ev.CdrRecord, out: list[CallEvent]) -> None:
        if self._expect_cdr is None:
            self._expect_cdr = True
        call_id = self._chan_call.get(e.uniqueid)
        call = self._calls.get(call_id) if call_id else None
        if call is None or not e.destination_channel:
            return
        own = self._own_leg(call)
        if (
            own is not None
            and own.uniqueid == e.uniqueid
            and own.answered_at is not None
            and e.disposition == "ANSWERED"
            and (e.destination_channel in call.far or call.leg_for(e.destination_channel))
        ):
            own.talk_cdr = e.billable_s  # the agent's phone toward whom it called
        via = self._hop_leg(call, e.channel)
        if (
            via is not None
            and e.destination_channel in via.endpoints
            and e.disposition == "ANSWERED"
            and via.answered_at is not None
        ):
            # The agent's own talk, from its hop toward its device: after a blind transfer
            # the hop stays in the caller's bridge, so the queue's TalkTime runs on.
            via.talk_endpoint = e.billable_s
        if e.uniqueid != call.call_id and e.uniqueid not in call.caller_side:
            # An agent's own Cdrs (a consultation, the transferer toward the target) bill
            # time away from the customer; only the caller's leg toward an agent counts.
            self._maybe_release(call, out)
            return
        leg = call.leg_for(e.destination_channel)
        if leg is not None and leg.answered_at is not None and e.disposition == "ANSWERED":
            leg.talk_cdr = e.billable_s
        self._maybe_release(call, out)

    # --- ending ------------------------------------------------------------------------------

    def _channel_gone(
        self,
        call: _Call,
        chan: _Channel,
        cause: int,
        cause_txt: str,
        at: datetime,
        out: list[CallEvent],
        *,
        inferred: bool,
    ) -> None:
        if chan.hung_up:
            return
        chan.hung_up = True
        self._remember(self._gone, chan.uniqueid)
        if chan.uniqueid == call.call_id:
            call.root_gone_at = at
        leg = call.leg_for(chan.name, chan.uniqueid)
        if leg is not None:
            if leg.consult:
                ringing = leg.state == "ringing"
                gone: RetractReason = (
                    "no_answer" if ringing and cause in NO_ANSWER_CAUSES else "caller_gone"
                )
                self._retract(call, leg, gone, at, out)
            elif leg.state == "ringing":
                reason: RetractReason
                if cause == ANSWERED_ELSEWHERE or self._answered_elsewhere(call, leg):
                    reason = "answered_elsewhere"
                elif cause in NO_ANSWER_CAUSES:
                    reason = "no_answer"
                else:
                    reason = "caller_gone"
                self._retract(call, leg, reason, at, out)
            elif leg.ended_at is None:
                leg.ended_at = at
                if inferred:
                    call.inferred.add("talk_s")
        elif chan.uniqueid in call.caller_side:
            if call.answered_at is None:
                call.caller_gone = True
            if not any(
                not c.hung_up for c in call.channels.values() if c.uniqueid in call.caller_side
            ):
                # Nobody left on the caller's side: whoever still rings, rings for nobody.
                for other in call.legs:
                    self._retract(call, other, "caller_gone", at, out)
        self._maybe_all_gone(call, at, out)

    def _maybe_all_gone(self, call: _Call, at: datetime, out: list[CallEvent]) -> None:
        if call.hung_up_at is None and all(c.hung_up for c in call.channels.values()):
            call.hung_up_at = at
            for leg in call.legs:
                self._retract(call, leg, "caller_gone", at, out)

    def _needs_cdr(self, call: _Call) -> bool:
        if self._expect_cdr is False:
            return False
        return any(
            leg.answered_at is not None
            and leg.talk_queue is None
            and leg.talk_cdr is None
            and leg.talk_endpoint is None
            for leg in call.legs
        )

    def _maybe_release(self, call: _Call, out: list[CallEvent], *, hold: bool = False) -> None:
        if call.hung_up_at is None or call.call_id not in self._calls:
            return
        if not self._needs_cdr(call):
            self._finish(call, out)
        elif hold and call.end_deadline is None:
            call.end_deadline = call.hung_up_at + self.cdr_grace

    def _finish(self, call: _Call, out: list[CallEvent]) -> None:
        if self._calls.pop(call.call_id, None) is None:
            return
        self._remember(self._ended, call.call_id)
        for alias in call.aliases:
            self._alias.pop(alias, None)
        for leg in call.legs:
            if self._busy.get(leg.device) == call.call_id:
                del self._busy[leg.device]
        for uniqueid in call.channels:
            self._chan_call.pop(uniqueid, None)
            self._remember(self._gone, uniqueid)
        ended_at = call.hung_up_at or call.started_at
        summary = self._summary(call, ended_at)
        out.append(CallEnded(call.call_id, ended_at, summary))

    @staticmethod
    def _answer_from_talk(call: _Call, leg: _Leg, ended_at: datetime) -> datetime:
        """A leg found up at a resync answered before we looked, not when we looked: its
        end less Asterisk's own talk figure (AgentComplete, Cdr) is closer (a restart
        12 s into a call was recorded as answered 12 s late on the lab)."""
        assert leg.answered_at is not None
        talk = leg.talk_queue if leg.talk_queue is not None else leg.talk_cdr
        if talk is None:
            return leg.answered_at
        back = (leg.ended_at or ended_at) - timedelta(seconds=talk)
        return min(leg.answered_at, max(back, call.started_at))

    def _summary(self, call: _Call, ended_at: datetime) -> CallSummary:
        inferred = set(call.inferred)
        agents: list[AgentLeg] = []
        answered_at = {
            id(leg): self._answer_from_talk(call, leg, ended_at) if leg.answer_inferred else at
            for leg in call.legs
            if (at := leg.answered_at) is not None
        }
        answered = sorted(
            (leg for leg in call.legs if id(leg) in answered_at),
            key=lambda leg: answered_at[id(leg)],
        )
        for leg in answered:
            at = answered_at[id(leg)]
            if leg.answer_inferred:
                inferred.add("answered_at")
            if leg.talk_endpoint is not None:
                talk = leg.talk_endpoint
            elif leg.talk_queue is not None:
                talk = leg.talk_queue
            elif leg.talk_cdr is not None:
                talk = leg.talk_cdr
            else:
                end = leg.ended_at or ended_at
                talk = max(0, int((end - at).total_seconds()))
                if self._expect_cdr:
                    inferred.add("talk_s")
            agents.append(AgentLeg(leg.device, at, talk))
        talk_s = sum(a.talk_s for a in agents)
        direction = "inbound" if call.origin is None else call.direction
        if direction == "inbound" and call.origin is not None:
            direction = "internal"
        if agents or (call.far_answered_at is not None and direction == "inbound"):
            # A follow-me's mobile that answered: answered, by nobody who is an agent.
            outcome: Literal["answered", "abandoned", "unanswered"] = "answered"
        elif direction != "inbound":
            outcome = "unanswered"  # the far end never answered the agent's call
        elif call.abandoned:
            outcome = "abandoned"
        elif call.queue_timed_out:
            outcome = "unanswered"  # nobody answered before the queue gave up
        elif call.caller_gone and (call.in_queue or bool(call.legs)):
            outcome = "abandoned"
        else:
            outcome = "unanswered"
        # The caller's own time on the line: its channel's lifetime, not the consultation or
        # the last agent's hangup after it, and never stretched to fit the talk figures.
        gone = call.root_gone_at or ended_at
        duration = max(0, int((gone - call.started_at).total_seconds()))
        outbound = direction == "outbound"
        return CallSummary(
            call_id=call.call_id,
            caller=call.dialled if outbound else call.caller,
            caller_name="" if outbound else call.caller_name,
            did=call.did,
            queue=call.queue,
            started_at=call.started_at,
            answered_at=answered_at[id(answered[0])] if answered else call.answered_at,
            ended_at=ended_at,
            duration_s=duration,
            talk_s=talk_s,
            outcome=outcome,
            agents=tuple(agents),
            # MixMonitor starts before Queue(): an unanswered call leaves an empty file.
            recording_path=call.recording if outcome == "answered" else None,
            uniqueids=tuple(call.channels),
            inferred=tuple(sorted(inferred)),
            direction=direction,
        )


def _local_partner(name: str, half: str) -> str | None:
    """The other half's name when `name` is the given half of a Local channel."""
    m = _LOCAL_HALF.match(name)
    if m is None or m.group(2) != half:
        return None
    return f"{m.group(1)};{'1' if half == '2' else '2'}"


def _local_ext(name: str) -> str:
    """`600` of `Local/600@ringgroup-0000001a;1`."""
    return name.removeprefix("Local/").split("@", 1)[0]


def _leg_state(leg: _Leg) -> Literal["ringing", "answered", "away"]:
    if leg.state == "ringing":
        return "ringing"
    return "answered" if leg.ended_at is None else "away"


_Handler = Callable[[CallTracker, Any, list[CallEvent]], None]
_DISPATCH: dict[type, _Handler] = {
    ev.NewChannel: CallTracker._on_new_channel,
    ev.ChannelStateChanged: CallTracker._on_state,
    ev.CallerIdChanged: CallTracker._on_callerid,
    ev.RecordingSet: CallTracker._on_recording,
    ev.QueueCallerJoin: CallTracker._on_queue_join,
    ev.QueueCallerLeave: CallTracker._on_queue_leave,
    ev.QueueCallerAbandon: CallTracker._on_queue_abandon,
    ev.HangupRequested: CallTracker._on_hangup_request,
    ev.AgentCalled: CallTracker._on_agent_called,
    ev.AgentConnect: CallTracker._on_agent_connect,
    ev.AgentComplete: CallTracker._on_agent_complete,
    ev.AgentRingNoAnswer: CallTracker._on_agent_noanswer,
    ev.DialBegin: CallTracker._on_dial_begin,
    ev.DialEnd: CallTracker._on_dial_end,
    ev.BridgeEnter: CallTracker._on_bridge_enter,
    ev.BridgeLeave: CallTracker._on_bridge_leave,
    ev.BlindTransfer: CallTracker._on_blind_transfer,
    ev.AttendedTransfer: CallTracker._on_attended_transfer,
    ev.Hangup: CallTracker._on_hangup,
    ev.CdrRecord: CallTracker._on_cdr,
}
