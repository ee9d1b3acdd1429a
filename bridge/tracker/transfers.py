"""Transfers and consultations (the handlers of `BlindTransfer` and `AttendedTransfer`).

A channel that is not the caller's and dials an agent while the
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
"""

from __future__ import annotations

from datetime import datetime

from bridge import pbx_events as ev
from bridge.models import CallEvent, CallRetracted
from bridge.tracker.calls import Call, Leg
from bridge.tracker.state import UP, TrackerState


class TransferHandling(TrackerState):
    """Who is consulting whom, and what a completed transfer moves."""

    def _talking(self, call: Call) -> list[Leg]:
        """Legs talking to the customer right now."""
        return [
            leg
            for leg in call.legs
            if leg.state == "answered" and not leg.consult and leg.ended_at is None
        ]

    def _serving(self, call: Call) -> list[Leg]:
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
    def _leg_hung_up(call: Call, leg: Leg) -> bool:
        chan = call.channels.get(leg.uniqueid)
        return chan is None or chan.hung_up

    def _consulting_agent(self, call: Call, channel: str) -> str | None:
        """Who is consulting, when a channel that is not the caller's dials out of an answered
        call: the agent whose device the dialling channel names, else the latest to answer."""
        talking = self._serving(call)
        if not talking:
            return None
        device = self.device_of(channel)
        if any(leg.device == device for leg in talking):
            return device
        return max(talking, key=lambda leg: leg.answered_at or leg.rang_at).device

    def _consulted_from(self, channel: str, linkedid: str) -> Call | None:
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
        calls: list[Call] = []
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
            leg = Leg(device, e.target_channel, e.target_uniqueid, call.queue, e.at, "consulting")
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
        self, call: Call, other: Call, from_device: str | None, at: datetime, out: list[CallEvent]
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
            moved = Leg(leg.device, leg.channel, leg.uniqueid, call.queue, at)
            moved.consult, moved.transfer_from = True, from_device
            moved.state = "consulting" if leg.state != "ringing" else "ringing"
            call.legs.append(moved)
            out.append(self._ringing(call, moved))
