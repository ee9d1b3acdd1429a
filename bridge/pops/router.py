"""Who gets which screen-pop: the tracker's call events in, addressed messages out. Pure.

The tracker is the one truth about a call: who rings, who answered, who handed it on. The
router decides nothing about the call itself. For each tracker event, together with the
tracker's view of that call right after it (`CallTracker.view`), it returns the messages the
event causes, in order, each addressed to a device (its agent's pages) or to a queue (the
supervisors following it):

    event                  to the device(s)                                 to the queue
    CallRinging            the ringing device: call.ringing with the card   the first ring only
                           (no card for a call between agents)
    CallDialing            the dialling agent: call.dialing with the card   -
                           of the dialled number's customer (`caller`)
    CallAnswered           devices that talked (answered or away) + it      call.answered
    CallRetracted          the device, if it was shown the call             -
    CallTransferred        the target (call.ringing first if never shown),  call.transferred
                           the transferer and everyone who talked
    CallEnded              every device that talked                         call.ended

What the router remembers per live call is about delivery, not the call: which devices have
been shown the customer's card, and whether the queue's followers have heard of it. The hub
turns a device into the connected pages of its agent and fills in the card each viewer may see;
`agent_of` maps a device to its agent id (the in-memory roster), so no lookup waits here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.models import (
    CallAnswered,
    CallDialing,
    CallEnded,
    CallEvent,
    CallRetracted,
    CallRinging,
    CallTransferred,
)
from bridge.pbx.namespace import pbx_queue
from bridge.pops.protocol import iso
from bridge.tracker.tracker import LiveCall

__all__ = ["AgentOf", "Pop", "PopRouter"]

AgentOf = Callable[[str], str | None]  # device -> agent id, None for a device of nobody
MAX_CALLS = 50_000  # live calls remembered; calls whose end never came are forgotten oldest first


@dataclass(frozen=True, slots=True)
class Pop:
    """One message for one device's agent, or for one queue's followers.

    `message` is the whole pop except, for `call.ringing`, its `customer`: the hub adds the
    card that each viewer may see (`card=True`). A queue pop skips followers whose own device
    is in `skip_devices` (they got the device pop already).
    """

    message: Mapping[str, Any]
    device: str | None = None
    queue: str | None = None
    card: bool = False
    skip_devices: frozenset[str] = frozenset()

    @property
    def kind(self) -> str:
        return str(self.message["type"])

    @property
    def call_id(self) -> str:
        return str(self.message["call_id"])


@dataclass(slots=True)
class _Shown:
    """What has been told about one call, and to whom."""

    caller: str
    caller_name: str
    queue: str | None
    devices: set[str] = field(default_factory=set)  # shown the customer's card
    announced: bool = False  # the queue's followers got its ringing


class PopRouter:
    def __init__(self, agent_of: AgentOf, *, max_calls: int = MAX_CALLS) -> None:
        self._agent_of = agent_of
        self._max_calls = max_calls
        self._calls: OrderedDict[str, _Shown] = OrderedDict()

    def route(self, event: CallEvent, view: LiveCall | None = None) -> list[Pop]:
        """The pops `event` causes, in delivery order. `view`: the tracker's call after it."""
        if isinstance(event, CallRinging):
            return self._ringing(event)
        if isinstance(event, CallDialing):
            return self._dialing(event)
        if isinstance(event, CallAnswered):
            return self._answered(event, view)
        if isinstance(event, CallRetracted):
            return self._retracted(event)
        if isinstance(event, CallTransferred):
            return self._transferred(event, view)
        if isinstance(event, CallEnded):
            return self._ended(event)
        return []

    def catch_up_device(self, device: str, events: Iterable[CallEvent]) -> list[Pop]:
        """Pops that bring a (re)connecting page of `device` up to date, from the tracker's
        `catch_up(device)` events (ringing, then answered, per call in progress)."""
        out: list[Pop] = []
        for event in events:
            if isinstance(event, CallRinging) and event.device == device:
                shown = self._shown(event.call_id, event.caller, event.caller_name, event.queue)
                shown.devices.add(device)
                out.append(Pop(self._ringing_message(event, shown), device=device, card=True))
            elif isinstance(event, CallAnswered):
                out.append(Pop(self._answered_message(event), device=device))
        return out

    def catch_up_queue(self, queue: str, calls: Iterable[LiveCall]) -> list[Pop]:
        """Pops that bring a new follower of `queue` up to date, from the tracker's snapshot."""
        out: list[Pop] = []
        for call in calls:
            if not call.queue or pbx_queue(call.call_id, call.queue) != queue:
                continue
            first = min((leg.since for leg in call.legs), default=call.started_at)
            message = _message("call.ringing", call.call_id, iso(first))
            message.update(caller=call.caller, caller_name=call.caller_name, queue=call.queue)
            out.append(Pop(message, queue=queue, card=True))
            for leg in call.legs:
                if leg.state == "answered":
                    answered = _message("call.answered", call.call_id, iso(leg.since))
                    answered["agent"] = self._agent_of(leg.device)
                    out.append(Pop(answered, queue=queue))
        return out

    def live_calls(self) -> int:
        return len(self._calls)

    # --- per event ---------------------------------------------------------------------------

    def _ringing(self, e: CallRinging) -> list[Pop]:
        shown = self._shown(e.call_id, e.caller, e.caller_name, e.queue)
        if shown.queue is None and e.queue:
            shown.queue = e.queue
        shown.devices.add(e.device)
        message = self._ringing_message(e, shown)
        if e.internal:  # agents calling each other: no customer on the call, no card lookup
            message["customer"] = None
        out = [Pop(message, device=e.device, card=not e.internal)]
        if shown.queue and not shown.announced:
            shown.announced = True
            followed = pbx_queue(e.call_id, shown.queue)
            out.append(Pop(message, queue=followed, card=True, skip_devices=frozenset({e.device})))
        return out

    def _dialing(self, e: CallDialing) -> list[Pop]:
        # The hub loads a card by `caller`: for an outbound call that is the number dialled.
        shown = self._shown(e.call_id, e.number, "", None)
        shown.devices.add(e.device)
        message = _message("call.dialing", e.call_id, iso(e.at))
        message.update(caller=e.number, caller_name="", queue=None)
        message["agent"] = self._agent_of(e.device)
        return [Pop(message, device=e.device, card=True)]

    def _answered(self, e: CallAnswered, view: LiveCall | None) -> list[Pop]:
        shown = self._calls.get(e.call_id)
        message = self._answered_message(e)
        devices = _talked(view, first=(), then=(e.device,))
        return self._fanout(message, devices, shown.queue if shown else _queue(view))

    def _retracted(self, e: CallRetracted) -> list[Pop]:
        shown = self._calls.get(e.call_id)
        if shown is None or e.device not in shown.devices:
            return []
        message = _message("call.retracted", e.call_id, iso(e.at))
        message["reason"] = e.reason
        return [Pop(message, device=e.device)]

    def _transferred(self, e: CallTransferred, view: LiveCall | None) -> list[Pop]:
        shown = self._calls.get(e.call_id)
        if shown is None and view is not None:
            shown = self._shown(e.call_id, view.caller, view.caller_name, view.queue)
        out: list[Pop] = []
        if shown is not None and e.to_device not in shown.devices:
            # A target that never rang for this call (an attended transfer, a transfer made
            # on the phone) sees the customer before it learns the call is now its own.
            shown.devices.add(e.to_device)
            ringing = _message("call.ringing", e.call_id, iso(e.at))
            ringing.update(caller=shown.caller, caller_name=shown.caller_name, queue=shown.queue)
            ringing["transfer_from"] = self._agent_of(e.from_device) if e.from_device else None
            out.append(Pop(ringing, device=e.to_device, card=True))
        message = _message("call.transferred", e.call_id, iso(e.at))
        message["agent"] = self._agent_of(e.to_device)
        message["from_agent"] = self._agent_of(e.from_device) if e.from_device else None
        also = (e.to_device,) if e.from_device is None else (e.to_device, e.from_device)
        devices = _talked(view, first=(), then=also)
        out.extend(self._fanout(message, devices, shown.queue if shown else _queue(view)))
        return out

    def _ended(self, e: CallEnded) -> list[Pop]:
        shown = self._calls.pop(e.call_id, None)
        summary = e.summary
        message = _message("call.ended", e.call_id, iso(e.at))
        message.update(duration_s=summary.duration_s, talk_s=summary.talk_s)
        message["outcome"] = summary.outcome
        devices = _unique(agent.device for agent in summary.agents)
        queue = summary.queue or (shown.queue if shown else None)
        return self._fanout(message, devices, queue)

    # --- helpers -----------------------------------------------------------------------------

    def _shown(self, call_id: str, caller: str, caller_name: str, queue: str | None) -> _Shown:
        shown = self._calls.get(call_id)
        if shown is None:
            while len(self._calls) >= self._max_calls:
                self._calls.popitem(last=False)
            shown = _Shown(caller, caller_name, queue)
            self._calls[call_id] = shown
        return shown

    def _ringing_message(self, e: CallRinging, shown: _Shown) -> dict[str, Any]:
        message = _message("call.ringing", e.call_id, iso(e.at))
        message.update(caller=e.caller, caller_name=e.caller_name, queue=e.queue or shown.queue)
        if e.transfer_from:  # a consultation, or the target of a blind transfer
            message["transfer_from"] = self._agent_of(e.transfer_from)
        return message

    def _answered_message(self, e: CallAnswered) -> dict[str, Any]:
        message = _message("call.answered", e.call_id, iso(e.at))
        message["agent"] = self._agent_of(e.device)
        return message

    @staticmethod
    def _fanout(message: dict[str, Any], devices: list[str], queue: str | None) -> list[Pop]:
        out = [Pop(message, device=device) for device in devices]
        if queue:  # its followers follow it by the board's name (`east:support`)
            followed = pbx_queue(message["call_id"], queue)
            out.append(Pop(message, queue=followed, skip_devices=frozenset(devices)))
        return out


def _message(kind: str, call_id: str, at: str) -> dict[str, Any]:
    return {"type": kind, "call_id": call_id, "at": at}


def _talked(view: LiveCall | None, *, first: Iterable[str], then: Iterable[str]) -> list[str]:
    """Devices in the call that talked (answered, or answered and left), plus the given ones."""
    talked = [] if view is None else [leg.device for leg in view.legs if leg.state != "ringing"]
    return _unique([*first, *talked, *then])


def _queue(view: LiveCall | None) -> str | None:
    return None if view is None else view.queue


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(item for item in items if item))
