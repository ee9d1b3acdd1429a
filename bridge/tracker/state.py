"""The tracker's state and the moves every handler shares.

`TrackerState` holds the calls by Linkedid and the indexes beside them (channel -> call,
recently ended calls and gone channels, consultation aliases, busy agents), and the
transitions the event handlers, the transfers and the resync all make: a leg rings, answers
or is retracted; a channel goes; a call ends (held for its Cdrs while they may come).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta

from bridge.devices import DeviceMatcher
from bridge.models import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallRetracted,
    CallRinging,
    CallTransferred,
)
from bridge.tracker.calls import Call, Channel, Leg, RetractReason
from bridge.tracker.summary import summarize

UP = 6  # AST_STATE_UP
RINGING_STATES = {4, 5}  # AST_STATE_RING, AST_STATE_RINGING
ANSWERED_ELSEWHERE = 26  # AST_CAUSE_ANSWERED_ELSEWHERE
NO_ANSWER_CAUSES = {17, 18, 19, 21}  # busy, no user response, no answer, rejected
MAX_REMEMBERED = 4096  # ended calls / hung-up channels kept to ignore late events


class TrackerState:
    """Calls keyed by Linkedid, and the transitions shared by every kind of event."""

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
        self._calls: dict[str, Call] = {}
        self._chan_call: dict[str, str] = {}  # channel uniqueid -> call id
        self._ended: OrderedDict[str, None] = OrderedDict()  # recently ended call ids
        self._gone: OrderedDict[str, None] = OrderedDict()  # recently hung-up uniqueids
        # Linkedid of a consultation placed from an agent's phone -> the customer's call id.
        self._alias: dict[str, str] = {}
        # device -> call id where it last answered the customer (checked on use, so stale
        # entries cost nothing); bounded by the number of devices.
        self._busy: dict[str, str] = {}

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

    def _remember(self, memory: OrderedDict[str, None], key: str) -> None:
        memory[key] = None
        memory.move_to_end(key)
        while len(memory) > MAX_REMEMBERED:
            memory.popitem(last=False)

    def _new_call(self, call_id: str, at: datetime) -> Call:
        call = Call(call_id=call_id, started_at=at)
        self._calls[call_id] = call
        return call

    def _add_channel(self, call: Call, uniqueid: str, name: str, state: int) -> Channel:
        chan = Channel(uniqueid, name, state)
        call.channels[uniqueid] = chan
        self._chan_call[uniqueid] = call.call_id
        return chan

    def _call_for(self, uniqueid: str, linkedid: str) -> Call | None:
        call_id = self._chan_call.get(uniqueid)
        if call_id is None:
            call_id = self._alias.get(linkedid, linkedid)
        return self._calls.get(call_id)

    def _channel_of(self, uniqueid: str, linkedid: str, name: str) -> tuple[Call, Channel] | None:
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
    def _set_caller(call: Call, num: str, name: str) -> None:
        if num:
            call.caller = num
        if name:
            call.caller_name = name

    @staticmethod
    def _fill_caller(call: Call, uniqueid: str, num: str, name: str) -> None:
        """Caller ID seen on a caller-side channel's event, when no NewCallerid told us."""
        if uniqueid == call.call_id or uniqueid in call.caller_side:
            if not call.caller and num:
                call.caller = num
            if not call.caller_name and name:
                call.caller_name = name

    def _ringing(self, call: Call, leg: Leg) -> CallRinging:
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

    def _own_leg(self, call: Call) -> Leg | None:
        return next((leg for leg in call.legs if leg.own), None)

    def _answer(
        self, call: Call, leg: Leg, at: datetime, out: list[CallEvent], *, own: bool = False
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
        self, call: Call, leg: Leg, reason: RetractReason, at: datetime, out: list[CallEvent]
    ) -> None:
        if leg.state not in ("ringing", "consulting"):
            return
        leg.state = "retracted"
        leg.ended_at = at
        out.append(CallRetracted(call.call_id, leg.device, at, reason))

    def _answered_elsewhere(self, call: Call, leg: Leg) -> bool:
        return any(
            other is not leg and other.state == "answered" and other.ended_at is None
            for other in call.legs
        )

    # --- ending ------------------------------------------------------------------------------

    def _channel_gone(
        self,
        call: Call,
        chan: Channel,
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

    def _maybe_all_gone(self, call: Call, at: datetime, out: list[CallEvent]) -> None:
        if call.hung_up_at is None and all(c.hung_up for c in call.channels.values()):
            call.hung_up_at = at
            for leg in call.legs:
                self._retract(call, leg, "caller_gone", at, out)

    def _needs_cdr(self, call: Call) -> bool:
        if self._expect_cdr is False:
            return False
        return any(
            leg.answered_at is not None
            and leg.talk_queue is None
            and leg.talk_cdr is None
            and leg.talk_endpoint is None
            for leg in call.legs
        )

    def _maybe_release(self, call: Call, out: list[CallEvent], *, hold: bool = False) -> None:
        if call.hung_up_at is None or call.call_id not in self._calls:
            return
        if not self._needs_cdr(call):
            self._finish(call, out)
        elif hold and call.end_deadline is None:
            call.end_deadline = call.hung_up_at + self.cdr_grace

    def _finish(self, call: Call, out: list[CallEvent]) -> None:
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
        summary = summarize(call, ended_at, expect_cdr=self._expect_cdr)
        out.append(CallEnded(call.call_id, ended_at, summary))
