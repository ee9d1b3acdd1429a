"""Resync after an AMI reconnect: live state rebuilt from the PBX's channel listing.

`resync()` compares the live channel list with what we know: calls whose channels all
vanished end with ``ended_at`` inferred, new ones are adopted (a dialled agent
channel is listed as ``AppQueue``/``AppDial``; the caller runs ``Queue``/``Dial``, whose data
names the queue). A leg missed anyway is learnt from the first event that names it
(``AgentConnect``, ``DialEnd ANSWER``, a ``BridgeEnter`` into the caller's bridge). A call
still open after `max_call_s` (its Hangups were lost) is closed by `tick` with ``ended_at``
inferred, so state stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from bridge import pbx_events as ev
from bridge.models import CallEvent
from bridge.tracker.calls import Call, Leg
from bridge.tracker.state import UP, TrackerState

# CoreShowChannel Application of a channel, as a real Asterisk 22 lists them while a queue
# call rings and talks (tests/fixtures/asterisk-traces/restart): the channel app_queue or
# app_dial dialled keeps `AppQueue`/`AppDial` `(Outgoing Line)` until it hangs up; the caller
# runs `Queue` (data `support,t,,,30`) or `Dial`.
DIALLED_APPS = {"appdial", "appqueue"}
DIALLING_APPS = {"queue", "dial"}


class Resync(TrackerState):
    """`resync`: what vanished while the link was down ends, what is new is adopted."""

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
        fresh: list[tuple[Call, ev.ChannelListed]] = []
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
                new_leg = Leg(device, item.channel, item.uniqueid, owner.queue, now)
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

    def _adopt_listed(
        self,
        item: ev.ChannelListed,
        entries: dict[str, ev.QueueEntryListed],
        now: datetime,
        fresh: list[tuple[Call, ev.ChannelListed]],
    ) -> Call | None:
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
