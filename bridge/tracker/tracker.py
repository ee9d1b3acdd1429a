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

When does a call end? When every channel seen for it has hung up. A leg's talk time comes from
the queue's own ``AgentComplete TalkTime``, else the ``Cdr BillableSeconds`` of the caller's
leg toward that agent (``Cdr DestinationChannel`` = the agent channel), else timestamps. The
queue figure comes first because a caller leg that the dialplan answered before ``Queue()``
bills the waiting time too (see concurrent-8: 8 s billed for 2 s of talk). Asterisk sends the
caller's Cdrs *after* its Hangup, so when an answered leg still lacks a figure and Cdrs are
flowing on this link, the end is held for up to `cdr_grace_s`; `tick(now)` releases held calls
whose Cdrs never come (their talk time is then marked inferred).

Transfers and consultations: `transfers`. After an AMI reconnect: `resync`. The per-call
data is `calls`, the summary a call ends with `summary`, the shared state `state`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from bridge import pbx_events as ev
from bridge.models import CallAnswered, CallDialing, CallEvent
from bridge.tracker.calls import Call, Channel, Leg, LiveCall, LiveLeg, RetractReason, live_view
from bridge.tracker.local import LOCAL_HALF, local_ext, local_partner
from bridge.tracker.resync import Resync
from bridge.tracker.state import MAX_REMEMBERED as MAX_REMEMBERED
from bridge.tracker.transfers import TransferHandling

__all__ = ["CallTracker", "LiveCall", "LiveLeg"]

NO_ANSWER_DIALSTATUS = {"NOANSWER", "BUSY", "CONGESTION", "CHANUNAVAIL"}


class _Dial(Protocol):
    """What a dial names (`AgentCalled`, `AgentConnect`, `DialBegin`, `DialEnd`): the calling
    channel and the one it dials."""

    @property
    def at(self) -> datetime: ...
    @property
    def uniqueid(self) -> str: ...
    @property
    def linkedid(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def dest_channel(self) -> str: ...
    @property
    def dest_uniqueid(self) -> str: ...


class CallTracker(TransferHandling, Resync):
    """A state machine keyed by Linkedid. `feed` one PBX event, get call events back.

    Built as `CallTracker(device_pattern, cdr_grace_s=..., expect_cdr=..., max_call_s=...,
    is_agent=...)` (`TrackerState`); transfers and the resync after a reconnect are their own
    modules, every other event's handler is here."""

    # --- public API ------------------------------------------------------------------------

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
        return [live_view(call) for call in self._calls.values() if call.hung_up_at is None]

    def view(self, call_id: str) -> LiveCall | None:
        """The call as its consumers see it now, with the legs that talked and left ("away",
        e.g. a transferer) beside those ringing or answered; None once ended or unknown."""
        call = self._calls.get(call_id)
        if call is None or call.hung_up_at is not None:
            return None
        return live_view(call, with_away=True)

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
                    own = Leg(call.origin, e.channel, e.uniqueid, None, e.at)
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
        e: _Dial,
        device_name: str,
        queue: str | None,
        out: list[CallEvent],
        caller: tuple[str, str] = ("", ""),
        exten: str = "",
    ) -> None:
        """`e`'s calling channel dials `e.dest_channel`: an agent's leg rings (or a
        consultation, or a Local hop's endpoint), else the call reaches a far party."""
        uniqueid, linkedid, channel, at = e.uniqueid, e.linkedid, e.channel, e.at
        dest_channel, dest_uniqueid = e.dest_channel, e.dest_uniqueid
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
        leg = Leg(device, dest_channel, dest_uniqueid, queue, at)
        if consult_from is not None:
            leg.consult = True
            leg.transfer_from = consult_from
        elif call.transfer_pending:
            leg.transfer_from = call.transfer_from
        elif call.origin is not None and call.direction == "inbound":
            call.direction = "internal"  # an agent's side dialled another agent
        call.legs.append(leg)
        hop = local_partner(channel, "2")
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

    def _hop_leg(self, call: Call, channel: str) -> Leg | None:
        """The leg whose Local hop `channel` runs: the `;2` half of a leg's `;1` channel."""
        partner = local_partner(channel, "2")
        if partner is None:
            return None
        for leg in reversed(call.legs):
            if leg.channel == partner:
                return leg
        return None

    def _partner_on_caller_side(self, call: Call, channel: str) -> bool:
        """`channel` is the `;2` half of a Local hop the caller's side dialled (a ring group, a
        follow-me): it dials on the caller's behalf, never as a consulting agent."""
        partner = local_partner(channel, "2")
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
        call: Call,
        dest_channel: str,
        dest_uniqueid: str,
        exten: str,
        at: datetime,
        out: list[CallEvent],
        via: Leg | None,
    ) -> None:
        """The call dials a party that is no agent: a Local hop standing for a ring group or a
        queue made in dialplan (kept as the call's `queue`), or the outside world."""
        local = LOCAL_HALF.match(dest_channel)
        if via is None and call.origin is None and local is not None and local.group(2) == "1":
            call.hops.add(dest_channel)
            if call.queue is None:
                call.queue = local_ext(dest_channel) or None
            return
        call.far.update(x for x in (dest_channel, dest_uniqueid) if x)
        if dest_uniqueid and dest_uniqueid not in call.channels:
            self._add_channel(call, dest_uniqueid, dest_channel, 0)
        if call.origin is None or call.dialled:
            return
        call.direction = "outbound"
        call.dialled = exten or local_ext(dest_channel)
        out.append(CallDialing(call.call_id, call.origin, at, call.dialled, dest_channel))

    def _on_agent_called(self, e: ev.AgentCalled, out: list[CallEvent]) -> None:
        self._start_leg(e, e.interface, e.queue or None, out, (e.caller_num, e.caller_name))

    def _on_dial_begin(self, e: ev.DialBegin, out: list[CallEvent]) -> None:
        call = self._call_for(e.uniqueid, e.linkedid)
        queue = call.queue if call is not None and call.in_queue else None
        self._start_leg(e, "", queue, out, (e.caller_num, e.caller_name), e.exten)

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
            self._start_leg(e, "", queue, out)
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

    def _far_end(self, call: Call, e: ev.DialEnd, out: list[CallEvent]) -> None:
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
    def _still_up(call: Call, uniqueid: str) -> bool:
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
                self._start_leg(e, e.interface, e.queue or None, out)
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
        self, call: Call, chan: Channel, at: datetime, out: list[CallEvent]
    ) -> None:
        device = self.device_of(chan.name)
        with_caller = any(
            c.bridge_id == chan.bridge_id and not c.hung_up
            for c in call.channels.values()
            if c.uniqueid in call.caller_side or c.uniqueid == call.call_id
        )
        if device is None or not with_caller:
            return
        leg = Leg(device, chan.name, chan.uniqueid, call.queue, at)
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
