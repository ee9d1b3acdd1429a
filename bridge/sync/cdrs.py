"""Rebuild a finished call from Asterisk Cdrs alone (pure; used by `crm-bridge sync run`).

A Cdr names one channel (UniqueID) and, for the leg that dialled, the channel it reached
(DestinationChannel). The *caller legs* of a call are its Cdrs that dialled something
(a DestinationChannel, or LastApplication Queue/Dial): each ANSWERED one toward an agent
channel is one agent who talked, for BillableSeconds, answered BillableSeconds before its
EndTime. Everything in such a record is inferred, and says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from bridge.devices import DeviceMatcher
from bridge.models import AgentLeg, CallEnded, CallSummary
from bridge.records.cdr import PbxCdr

__all__ = [
    "INFERRED_FROM_CDR",
    "CallDecision",
    "call_from_cdrs",
    "group_cdrs",
    "handset_index",
    "linked_cdrs",
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
    """Cdrs by call id.

    A CDR whose call is known (`call_of`: recorded, routed, or the store's own linkedid) goes
    to that call. The others - cdr_csv without `newcdrcolumns` has no linkedid, and a call
    that started while the bridge was down has no routing decision - are joined to the CDRs
    they are linked with (`linked_cdrs`): the call is then the known one among them, else
    the oldest channel's UniqueID, which is what Asterisk gives the whole call as Linkedid
    (the caller's `;1` of a Local pair, the trunk channel). Grouping each CDR by its own
    UniqueID would split one call into several, none keyed by its Linkedid."""
    listed = list(cdrs)
    groups: dict[str, list[PbxCdr]] = {}
    for component in linked_cdrs(listed):
        known = {call_of[c.uniqueid] for c in component if c.uniqueid in call_of}
        if len(known) > 1:  # the links disagree with what is known: trust what is known
            for cdr in component:
                groups.setdefault(call_of.get(cdr.uniqueid, cdr.uniqueid), []).append(cdr)
            continue
        call_id = known.pop() if known else min((c.uniqueid for c in component), key=_age)
        groups.setdefault(call_id, []).extend(component)
    return groups


_SECOND = timedelta(seconds=1)
# `PJSIP/1001-0000000a`, `Local/1001@phones-00000001`: the PBX's channel counter, which only
# restarts with the PBX (DAHDI's `DAHDI/1-1` names come back call after call).
_PER_BOOT = re.compile(r"-[0-9a-f]{8}$")
_UNIQUEID = re.compile(r"(\d+)\.(\d+)$")


def _age(uniqueid: str) -> tuple[int, int, str]:
    """Creation order of a UniqueID (`[systemname-]epoch.sequence`): seconds, then the PBX's
    channel counter; an unparsable one sorts last."""
    m = _UNIQUEID.search(uniqueid)
    if m is None:
        return (2**63, 0, uniqueid)
    return (int(m.group(1)), int(m.group(2)), uniqueid)


def linked_cdrs(cdrs: Sequence[PbxCdr]) -> list[list[PbxCdr]]:
    """The CDRs in groups that belong to one call, in input order.

    Two CDRs are linked when they share a UniqueID (a channel with several CDRs), or when one
    names the other's channel - its own or the one it dialled, the two halves of a Local
    channel folded together - and their times overlap. Channel names repeat after a PBX
    restart (and DAHDI names at every call), so a name links only CDRs alive at the same
    time (a CDR lives at least the second it started in): a channel is in one call at a
    time."""
    parent = list(range(len(cdrs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    first_of: dict[str, int] = {}
    by_name: dict[str, list[tuple[datetime, datetime, int]]] = {}
    for i, cdr in enumerate(cdrs):
        union(i, first_of.setdefault(cdr.uniqueid, i))
        if cdr.start_time is None:
            continue
        alive = (cdr.start_time, max(cdr.end_time or cdr.start_time, cdr.start_time + _SECOND), i)
        for name in {_base(cdr.channel), _base(cdr.destination_channel)} - {""}:
            by_name.setdefault(name, []).append(alive)
    for name, spans in by_name.items():
        # A sweep by start time: each CDR joins the run of overlapping ones it starts inside.
        # Times are truncated to the second, so a CDR a transfer opens the second another
        # on its channel closes touches it; only names unique per boot may just touch.
        touching = _PER_BOOT.search(name) is not None
        spans.sort()
        head, run_end = spans[0][2], spans[0][1]
        for start, end, i in spans[1:]:
            if start < run_end or (touching and start == run_end):
                union(head, i)
                run_end = max(run_end, end)
            else:
                head, run_end = i, end
    out: dict[int, list[PbxCdr]] = {}
    for i, cdr in enumerate(cdrs):
        out.setdefault(find(i), []).append(cdr)
    return list(out.values())


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


def _taken_over(
    cdrs: Sequence[PbxCdr], legs: Sequence[PbxCdr], link: str, device_pattern: DeviceMatcher
) -> tuple[str, datetime | None] | None:
    """Who an attended transfer through the consultation link `link` handed the customer to,
    and when it completed: the link's own Cdr toward the target's channel names the target;
    the transferer's Cdr toward the link ends at the completion (bridge_basic.c merges the
    bridges when the transferer hangs up). When Asterisk optimises the Local pair away the
    customer's next Cdr names the target itself; when it does not (seen live on the lab, the
    target hanging up soon after), the customer's last Cdr is toward the link, all of it."""
    target = next(
        (
            device
            for c in cdrs
            if _base(c.channel) == link and c.destination_channel
            for device in [_device(device_pattern, c.destination_channel)]
            if device is not None
        ),
        None,
    )
    if target is None:
        return None
    done = max(
        (
            c.end_time
            for c in cdrs
            if not _is_customer(c, legs)
            and _base(c.destination_channel) == link
            and _base(c.channel) != link
            and c.end_time is not None
        ),
        default=None,
    )
    return target, done


def call_from_cdrs(
    call_id: str,
    cdrs: Sequence[PbxCdr],
    device_pattern: DeviceMatcher,
    decision: CallDecision | None = None,
    handsets: Mapping[str, PbxCdr] | None = None,
) -> CallEnded | None:
    """The call's end event rebuilt from its Cdrs; None when they hold no caller leg (e.g.
    only an agent handset's own Cdr) or no times."""
    legs = sorted(
        (c for c in cdrs if _is_caller_leg(c) and c.start_time and c.end_time),
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
    # (bridge_basic.c dials `Local/<ext>@<ctx>`): the customer's time toward it, on hold
    # until the completion, is still the transferring agent's (as the live tracker counts).
    links = {_base(c.channel) for c in cdrs if not _is_customer(c, legs) and c.destination_channel}
    agents: list[AgentLeg] = []
    for n, leg in enumerate(legs):
        if leg.disposition != "ANSWERED" or not leg.destination_channel:
            continue
        link = _base(leg.destination_channel)
        if link in links and agents and leg.end_time is not None:
            start = leg.start_time or leg.end_time
            target = _taken_over(cdrs, legs, link, device_pattern)
            done = target[1] if target is not None else None
            if done is None or not start <= done < leg.end_time or n + 1 < len(legs):
                done = None  # the customer's Cdrs name the target's own channel next
            held = int(((done or leg.end_time) - start).total_seconds())
            last = agents[-1]
            agents[-1] = AgentLeg(last.device, last.answered_at, last.talk_s + max(0, held))
            if target is not None and done is not None:
                talk = int((leg.end_time - done).total_seconds())
                agents.append(AgentLeg(target[0], done, max(0, talk)))
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
