"""Rebuild a finished call from Asterisk Cdrs alone (pure; used by `crm-bridge sync run`).

A Cdr names one channel (UniqueID) and, for the leg that dialled, the channel it reached
(DestinationChannel). The *caller legs* of a call are its Cdrs that dialled something
(a DestinationChannel, or LastApplication Queue/Dial): each ANSWERED one toward an agent
channel is one agent who talked, for BillableSeconds, answered BillableSeconds before its
EndTime. Everything in such a record is inferred, and says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from bridge.devices import DeviceMatcher
from bridge.models import AgentLeg, CallEnded, CallSummary
from bridge.records.cdr import PbxCdr

__all__ = [
    "INFERRED_FROM_CDR",
    "CallDecision",
    "call_from_cdrs",
    "follow_dialled",
    "group_cdrs",
    "handset_index",
]

DIALLING_APPS = {"queue", "dial"}
INFERRED_FROM_CDR = (
    "agents",
    "answered_at",
    "caller",
    "did",
    "duration_s",
    "ended_at",
    "outcome",
    "queue",
    "started_at",
    "talk_s",
)


@dataclass(frozen=True, slots=True)
class CallDecision:
    """What route_decisions says about a call (queue, recording), if anything."""

    queue: str | None = None
    recording: str | None = None


def group_cdrs(cdrs: Iterable[PbxCdr], call_of: Mapping[str, str]) -> dict[str, list[PbxCdr]]:
    """Cdrs by call id: the call a uniqueid is known to belong to, else the uniqueid itself
    (on a real PBX the trunk channel's Uniqueid is the call's Linkedid)."""
    groups: dict[str, list[PbxCdr]] = {}
    for cdr in cdrs:
        groups.setdefault(call_of.get(cdr.uniqueid, cdr.uniqueid), []).append(cdr)
    return groups


def follow_dialled(cdrs: Sequence[PbxCdr], call_of: Mapping[str, str]) -> dict[str, str]:
    """`call_of` plus, for each Cdr not in it, the call of the Cdr that dialled its channel.

    cdr_csv without `newcdrcolumns` has no linkedid: an agent's consultation (attended
    transfer: `Local/1001@phones-…;1` dials `Local/2001@internal-…`) and the handsets would
    otherwise each look like a call of their own. The dialler must have been up when the
    dialled channel started, as channel names repeat after an Asterisk restart."""
    dialled_by: dict[str, list[PbxCdr]] = {}
    for cdr in cdrs:
        if cdr.destination_channel:
            dialled_by.setdefault(_base(cdr.destination_channel), []).append(cdr)
    out = dict(call_of)

    def call(cdr: PbxCdr, depth: int) -> str:
        known = out.get(cdr.uniqueid)
        if known is not None or depth > 16:
            return known or cdr.uniqueid
        for dialler in dialled_by.get(_base(cdr.channel), ()):
            if dialler.uniqueid != cdr.uniqueid and _was_up(dialler, cdr):
                return call(dialler, depth + 1)
        return cdr.uniqueid

    for cdr in cdrs:
        if cdr.uniqueid not in out:
            found = call(cdr, 0)
            if found != cdr.uniqueid:
                out[cdr.uniqueid] = found
    return out


def _was_up(dialler: PbxCdr, cdr: PbxCdr) -> bool:
    if dialler.start_time is None or cdr.start_time is None:
        return False
    end = dialler.end_time or dialler.start_time
    return dialler.start_time - timedelta(seconds=1) <= cdr.start_time <= end


def _base(channel: str) -> str:
    """`Local/1002@phones-0000000a;1` and `;2` are two halves of one Local channel."""
    return channel.rsplit(";", 1)[0] if channel.startswith("Local/") else channel


def handset_index(cdrs: Iterable[PbxCdr]) -> dict[str, PbxCdr]:
    """The agent handsets' own answered Cdrs, by channel (Local halves folded together).

    A caller leg's BillableSeconds also counts time the caller spent in the queue when the
    dialplan answered before `Queue()`; the handset's own Cdr counts only the talk."""
    out: dict[str, PbxCdr] = {}
    for cdr in cdrs:
        if not _is_caller_leg(cdr) and cdr.disposition == "ANSWERED" and cdr.channel:
            out.setdefault(_base(cdr.channel), cdr)
    return out


def _is_caller_leg(cdr: PbxCdr) -> bool:
    return bool(cdr.destination_channel) or cdr.last_application.lower() in DIALLING_APPS


def _is_customer(cdr: PbxCdr, legs: Sequence[PbxCdr]) -> bool:
    return bool(legs) and cdr.uniqueid == legs[0].uniqueid


def _device(pattern: DeviceMatcher, channel: str) -> str | None:
    m = pattern.match(channel)
    return (m.group("ext") or None) if m else None


def call_from_cdrs(
    call_id: str,
    cdrs: Sequence[PbxCdr],
    device_pattern: DeviceMatcher,
    decision: CallDecision | None = None,
    handsets: Mapping[str, PbxCdr] | None = None,
) -> CallEnded | None:
    """The call's end event rebuilt from its Cdrs; None when they hold no caller leg (e.g.
    only an agent handset's own Cdr) or no times."""
    # A leg whose own channel another leg dialled is an agent's (a consultation before an
    # attended transfer): the agent it reached talks with the caller through the caller's
    # own leg to it, which is counted there.
    dialled = {_base(c.destination_channel) for c in cdrs if c.destination_channel}
    legs = sorted(
        (
            c
            for c in cdrs
            if _is_caller_leg(c) and c.start_time and c.end_time and _base(c.channel) not in dialled
        ),
        key=lambda c: (c.start_time, c.end_time),
    )
    if not legs:
        return None
    starts = [c.start_time for c in cdrs if c.start_time]
    ends = [c.end_time for c in cdrs if c.end_time]
    started, ended = min(starts), max(ends)
    # Only the customer's own channel talks to agents for the record; an agent's Cdrs (its
    # consultation, the transferer toward the target) bill time away from the customer.
    legs = [c for c in legs if c.uniqueid == legs[0].uniqueid]
    # A Local pair that itself dialled an agent is an attended transfer's consultation link
    # (bridge_basic.c dials `Local/<ext>@<ctx>`), mapped to the handset it dialled.
    links = {
        _base(c.channel): _base(c.destination_channel)
        for c in cdrs
        if not _is_customer(c, legs) and c.destination_channel
    }
    reached = {_base(c.destination_channel) for c in legs if c.destination_channel}
    agents: list[AgentLeg] = []
    for leg in legs:
        if leg.disposition != "ANSWERED" or not leg.destination_channel:
            continue
        handset = links.get(_base(leg.destination_channel))
        if handset is not None and agents and leg.end_time is not None:
            if handset in reached:
                # The link was optimised away and the customer then reached the handset
                # itself: its time toward the link, on hold until the completion, is still
                # the transferring agent's (as the live tracker counts).
                held = int((leg.end_time - (leg.start_time or leg.end_time)).total_seconds())
                last = agents[-1]
                agents[-1] = AgentLeg(last.device, last.answered_at, last.talk_s + max(0, held))
                continue
            # Not optimised (Asterisk 22.11 in the lab): the customer talks to the target
            # through the link for the rest of the call; the agent is the handset's.
            device = _device(device_pattern, handset) or _device(
                device_pattern, leg.destination_channel
            )
            if device is not None:
                talk = leg.billable_s
                agents.append(AgentLeg(device, leg.end_time - timedelta(seconds=talk), talk))
            continue
        device = _device(device_pattern, leg.destination_channel)
        if device is None or leg.end_time is None:
            continue
        own = (handsets or {}).get(_base(leg.destination_channel))
        talk = leg.billable_s
        answered = leg.end_time - timedelta(seconds=talk)
        start = leg.start_time or leg.end_time
        if (
            own is not None
            and own.answer_time is not None
            and own.end_time is not None
            and own.answer_time >= start  # not picked up earlier for a consultation
        ):
            # Whole-second wall times round better than the truncated BillableSeconds.
            answered = own.answer_time
            wall = int((own.end_time - own.answer_time).total_seconds())
            span = int((leg.end_time - start).total_seconds())
            talk = max(0, min(wall, span))
        agents.append(AgentLeg(device, answered, talk))
    agents.sort(key=lambda a: a.answered_at)
    queue = decision.queue if decision and decision.queue else None
    if queue is None:
        for leg in legs:
            if leg.last_application.lower() == "queue" and leg.last_data:
                queue = leg.last_data.split(",")[0].strip() or None
                break
    outcome: Literal["answered", "abandoned", "unanswered"]
    if agents:
        outcome = "answered"
    elif queue is not None or any(c.last_application.lower() == "queue" for c in legs):
        outcome = "abandoned"
    else:
        outcome = "unanswered"
    talk = sum(a.talk_s for a in agents)
    duration = max(int((ended - started).total_seconds()), talk)
    first = legs[0]
    summary = CallSummary(
        call_id=call_id,
        caller=first.source,
        caller_name="",
        did=first.destination,
        queue=queue,
        started_at=started,
        answered_at=agents[0].answered_at if agents else None,
        ended_at=ended,
        duration_s=duration,
        talk_s=talk,
        outcome=outcome,
        agents=tuple(agents),
        recording_path=None,  # the writer takes the decision's BRIDGE_RECORDING, inferred
        uniqueids=tuple(sorted({c.uniqueid for c in cdrs})),
        inferred=INFERRED_FROM_CDR,
    )
    return CallEnded(call_id, ended, summary)
