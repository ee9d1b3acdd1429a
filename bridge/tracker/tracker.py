"""The call tracker: normalised AMI events in, call events out. Pure, no I/O, no clock.

A call is everything sharing one Asterisk Linkedid. Within it we know:
- the *root* channel (Uniqueid == Linkedid: the trunk leg on a real PBX), which gives the
  caller ID and the dialled number (its Exten);
- *legs*: channels the call dialled (``AgentCalled``/``DialBegin`` DestChannel) whose name or
  queue Interface yields an agent device through ``[pbx] device_pattern``.

Emitted, in order of cause: `CallRinging` when a leg starts ringing; `CallAnswered` when a leg
answers (``DialEnd ANSWER`` or ``AgentConnect``); `CallRetracted` when a ringing leg stops
without answering; `CallTransferred` when, after a blind transfer, another device answers the
call (or at once for an attended transfer); `CallEnded` once per call.

When does a call end? When every channel seen for it has hung up. A leg's talk time comes from
the queue's own ``AgentComplete TalkTime``, else the ``Cdr BillableSeconds`` of the caller's
leg toward that agent (``Cdr DestinationChannel`` = the agent channel), else timestamps. The
queue figure comes first because a caller leg that the dialplan answered before ``Queue()``
bills the waiting time too (see concurrent-8: 8 s billed for 2 s of talk). Asterisk sends the
caller's Cdrs *after* its Hangup, so when an answered leg still lacks a figure and Cdrs are
flowing on this link, the end is held for up to `cdr_grace_s`; `tick(now)` releases held calls
whose Cdrs never come (their talk time is then marked inferred).

After an AMI reconnect `resync()` compares the live channel list with what we know: calls whose
channels all vanished end with ``ended_at`` inferred, new ones are adopted.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from bridge.ami import normalise as ev
from bridge.models import (
    AgentLeg,
    CallAnswered,
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
DIALLED_APPS = {"appdial", "appqueue"}  # CoreShowChannel Application of a dialled channel
MAX_REMEMBERED = 4096  # ended calls / hung-up channels kept to ignore late events

RetractReason = Literal["answered_elsewhere", "caller_gone", "no_answer", "transferred"]


@dataclass(frozen=True, slots=True)
class LiveLeg:
    device: str
    channel: str
    state: Literal["ringing", "answered", "away"]  # away: talked, then left the live call
    since: datetime


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


@dataclass(slots=True)
class _Leg:
    device: str
    channel: str
    uniqueid: str
    queue: str | None
    rang_at: datetime
    state: Literal["ringing", "answered", "retracted"] = "ringing"
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    talk_queue: int | None = None
    talk_cdr: int | None = None
    answer_inferred: bool = False


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
    end_deadline: datetime | None = None
    inferred: set[str] = field(default_factory=set)

    def leg_for(self, channel: str, uniqueid: str = "") -> _Leg | None:
        for leg in reversed(self.legs):
            if (channel and leg.channel == channel) or (uniqueid and leg.uniqueid == uniqueid):
                return leg
        return None

    def leg_channel_ids(self) -> set[str]:
        return {leg.uniqueid for leg in self.legs}


class CallTracker:
    """A state machine keyed by Linkedid. `feed` one normalised event, get call events back."""

    def __init__(
        self,
        device_pattern: re.Pattern[str],
        *,
        cdr_grace_s: float = 3.0,
        expect_cdr: bool | None = None,
        max_call_s: float = 12 * 3600,
    ) -> None:
        self.device_pattern = device_pattern
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

    # --- public API ------------------------------------------------------------------------

    def device_of(self, name: str) -> str | None:
        """The agent extension a channel or interface name carries, if any."""
        if not name:
            return None
        m = self.device_pattern.match(name)
        if m is None:
            return None
        ext = m.group("ext")
        return ext or None

    def feed(self, event: ev.AmiEvent) -> list[CallEvent]:
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
    ) -> list[CallEvent]:
        """Rebuild live state from a `CoreShowChannels` + `QueueStatus` listing."""
        out: list[CallEvent] = []
        listed = [c for c in channels if c.uniqueid and c.uniqueid not in self._gone]
        alive = {c.uniqueid: c for c in listed}
        entries = {q.uniqueid: q for q in queue_entries if q.uniqueid}
        # 1. What vanished while the link was down.
        for call in list(self._calls.values()):
            if call.hung_up_at is not None:
                continue
            for chan in list(call.channels.values()):
                if not chan.hung_up and chan.uniqueid not in alive:
                    self._channel_gone(call, chan, 0, "", now, out, inferred=True)
            if call.hung_up_at is not None:
                call.inferred.add("ended_at")
                self._finish(call, out)
        # 2. What we did not know about, and state we missed.
        for item in listed:
            call_id = self._chan_call.get(item.uniqueid) or item.linkedid
            if call_id in self._ended:
                continue
            known = self._calls.get(call_id)
            if known is None:
                known = self._new_call(call_id, now - timedelta(seconds=item.duration_s))
                known.inferred.add("started_at")
            call = known
            listed_chan = call.channels.get(item.uniqueid)
            if listed_chan is None:
                listed_chan = self._add_channel(call, item.uniqueid, item.channel, item.state)
                if item.uniqueid == call.call_id or item.uniqueid in entries:
                    call.caller_side.add(item.uniqueid)
                    self._set_caller(call, item.caller_num, item.caller_name)
                    if item.uniqueid == call.call_id and not call.did:
                        call.did = item.exten
                if item.application.lower() in DIALLED_APPS:
                    device = self.device_of(item.channel)
                    if device is not None and call.leg_for(item.channel) is None:
                        new_leg = _Leg(device, item.channel, item.uniqueid, call.queue, now)
                        call.legs.append(new_leg)
                        out.append(self._ringing(call, new_leg))
            listed_chan.state = item.state
            leg = call.leg_for(item.channel, item.uniqueid)
            if leg is not None and leg.state == "ringing" and item.state == UP:
                leg.answer_inferred = True
                self._answer(call, leg, now, out)
            entry = entries.get(item.uniqueid)
            if entry is not None:
                call.queue = call.queue or entry.queue or None
                call.in_queue = True
                if not call.caller:
                    self._set_caller(call, entry.caller_num, entry.caller_name)
        return out

    # --- internals -------------------------------------------------------------------------

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
            call_id = linkedid
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
        )

    def _live(self, call: _Call, *, with_away: bool = False) -> LiveCall:
        legs = tuple(
            LiveLeg(
                leg.device,
                leg.channel,
                _leg_state(leg),
                leg.answered_at or leg.rang_at,
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
        call = self._calls.get(self._chan_call.get(e.uniqueid, e.linkedid))
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
        if call.recording is None and e.uniqueid not in call.leg_channel_ids():
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
    ) -> None:
        if not uniqueid or not dest_channel:
            return  # an originate: no calling channel, nobody is being called by the call
        found = self._channel_of(uniqueid, linkedid, channel)
        if found is None:
            return
        call = found[0]
        call.caller_side.add(uniqueid)
        self._fill_caller(call, uniqueid, *caller)
        if call.leg_for(dest_channel, dest_uniqueid) is not None:
            return
        device = self.device_of(device_name) or self.device_of(dest_channel)
        if device is None:
            return
        leg = _Leg(device, dest_channel, dest_uniqueid, queue, at)
        call.legs.append(leg)
        if dest_uniqueid and dest_uniqueid not in call.channels:
            self._add_channel(call, dest_uniqueid, dest_channel, 0)
        elif dest_uniqueid:
            # The dialled channel may carry another Linkedid (attended transfers); it is ours.
            self._chan_call[dest_uniqueid] = call.call_id
        out.append(self._ringing(call, leg))

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
        )

    def _answer(self, call: _Call, leg: _Leg, at: datetime, out: list[CallEvent]) -> None:
        if leg.state != "ringing":
            return
        leg.state = "answered"
        leg.answered_at = at
        if call.answered_at is None:
            call.answered_at = at
        if call.transfer_pending and leg.device != call.transfer_from:
            out.append(CallTransferred(call.call_id, call.transfer_from, leg.device, at))
            call.transfer_pending = False
        out.append(CallAnswered(call.call_id, leg.device, at))

    def _retract(
        self, call: _Call, leg: _Leg, reason: RetractReason, at: datetime, out: list[CallEvent]
    ) -> None:
        if leg.state != "ringing":
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
        if leg is None:
            return
        if e.status == "ANSWER":
            self._answer(call, leg, e.at, out)
        elif self._answered_elsewhere(call, leg):
            self._retract(call, leg, "answered_elsewhere", e.at, out)
        elif e.status in NO_ANSWER_DIALSTATUS:
            self._retract(call, leg, "no_answer", e.at, out)
        else:
            self._retract(call, leg, "caller_gone", e.at, out)

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
        self._channel_of(e.uniqueid, e.linkedid, e.channel)

    def _on_bridge_leave(self, e: ev.BridgeLeave, out: list[CallEvent]) -> None:
        found = self._channel_of(e.uniqueid, e.linkedid, e.channel)
        if found is None:
            return
        leg = found[0].leg_for(e.channel, e.uniqueid)
        if leg is not None and leg.state == "answered" and leg.ended_at is None:
            leg.ended_at = e.at

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
        if not e.success or not e.target_channel:
            return
        call = self._call_for(e.transferee_uniqueid, e.transferee_linkedid) or self._call_for(
            e.orig_transferer_uniqueid, e.orig_transferer_linkedid
        )
        if call is None or call.hung_up_at is not None:
            return
        device = self.device_of(e.target_channel)
        if device is None:
            return
        old = call.leg_for(e.orig_transferer_channel, e.orig_transferer_uniqueid)
        if old is not None and old.ended_at is None:
            old.ended_at = e.at
        # The target channel belongs to the consultation call; from now on it is ours.
        if e.target_uniqueid:
            other = self._calls.get(self._chan_call.get(e.target_uniqueid, ""))
            if other is not None and other is not call:
                other.channels.pop(e.target_uniqueid, None)
                other.legs = [x for x in other.legs if x.uniqueid != e.target_uniqueid]
                self._maybe_all_gone(other, e.at, out)
            if e.target_uniqueid not in call.channels:
                self._add_channel(call, e.target_uniqueid, e.target_channel, UP)
        leg = _Leg(device, e.target_channel, e.target_uniqueid, call.queue, e.at)
        call.legs.append(leg)
        call.transfer_from = old.device if old is not None else None
        call.transfer_pending = True
        self._answer(call, leg, e.at, out)

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
        leg = call.leg_for(chan.name, chan.uniqueid)
        if leg is not None:
            if leg.state == "ringing":
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
            leg.answered_at is not None and leg.talk_queue is None and leg.talk_cdr is None
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
        for uniqueid in call.channels:
            self._chan_call.pop(uniqueid, None)
            self._remember(self._gone, uniqueid)
        ended_at = call.hung_up_at or call.started_at
        summary = self._summary(call, ended_at)
        out.append(CallEnded(call.call_id, ended_at, summary))

    def _summary(self, call: _Call, ended_at: datetime) -> CallSummary:
        inferred = set(call.inferred)
        agents: list[AgentLeg] = []
        answered = sorted(
            (leg for leg in call.legs if leg.answered_at is not None),
            key=lambda leg: leg.answered_at or ended_at,
        )
        for leg in answered:
            assert leg.answered_at is not None
            if leg.answer_inferred:
                inferred.add("answered_at")
            if leg.talk_queue is not None:
                talk = leg.talk_queue
            elif leg.talk_cdr is not None:
                talk = leg.talk_cdr
            else:
                end = leg.ended_at or ended_at
                talk = max(0, int((end - leg.answered_at).total_seconds()))
                if self._expect_cdr:
                    inferred.add("talk_s")
            agents.append(AgentLeg(leg.device, leg.answered_at, talk))
        talk_s = sum(a.talk_s for a in agents)
        if agents:
            outcome: Literal["answered", "abandoned", "unanswered"] = "answered"
        elif call.abandoned:
            outcome = "abandoned"
        elif call.queue_timed_out:
            outcome = "unanswered"  # nobody answered before the queue gave up
        elif call.caller_gone and (call.in_queue or bool(call.legs)):
            outcome = "abandoned"
        else:
            outcome = "unanswered"
        duration = max(0, int((ended_at - call.started_at).total_seconds()))
        # Talk figures come from Asterisk's own clock; never report less call than talk.
        duration = max(duration, talk_s)
        return CallSummary(
            call_id=call.call_id,
            caller=call.caller,
            caller_name=call.caller_name,
            did=call.did,
            queue=call.queue,
            started_at=call.started_at,
            answered_at=answered[0].answered_at if answered else None,
            ended_at=ended_at,
            duration_s=duration,
            talk_s=talk_s,
            outcome=outcome,
            agents=tuple(agents),
            recording_path=call.recording,
            uniqueids=tuple(call.channels),
            inferred=tuple(sorted(inferred)),
        )


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
