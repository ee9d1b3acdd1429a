"""Per-queue wallboard figures, as a pure function of what is known right now. No I/O.

    waiting          live calls in the queue that no agent has answered yet
    longest_wait_s   the oldest of them, in whole seconds
    agents           each member's state: talking (a live call it answered is still up),
                     ringing (a live call rings it), paused (the PBX says so), wrapup (a call
                     it talked on ended less than `[wallboard] wrapup_s` ago and its
                     disposition is not filed yet; `wrapup_s` on the row: seconds so far),
                     else available; the states are exclusive, so the five numbers add up to the
                     members
    answered, abandoned   today's ended calls of the queue (`Tally`, kept by the board)
    sla_pct          answered within `[wallboard] sla_s` of arriving, as a share of answered
                     plus abandoned calls today (an abandoned call missed the service level);
                     None before the first such call

Members come from the PBX (`QueueStatus`); without a PBX listing, the agents seen on the
queue's live calls stand in for them, so a board is never empty while calls ring.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bridge.tracker.tracker import LiveCall

__all__ = ["AgentRow", "Member", "QueueStats", "Tally", "queue_stats"]

AgentState = Literal["available", "ringing", "talking", "wrapup", "paused"]


@dataclass(frozen=True, slots=True)
class Member:
    """One queue member as the PBX lists it."""

    queue: str
    device: str
    name: str = ""
    paused: bool = False
    reason: str = ""


@dataclass(slots=True)
class Tally:
    """Today's ended calls of one queue."""

    answered: int = 0
    abandoned: int = 0
    within_sla: int = 0


@dataclass(frozen=True, slots=True)
class AgentRow:
    agent: str | None  # the agent id (None: a device of nobody in the roster)
    device: str
    name: str
    state: AgentState
    since: datetime | None
    reason: str
    calls_today: int
    wrapup_s: int | None = None  # seconds into wrap-up (state "wrapup" only)

    def as_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "device": self.device,
            "name": self.name,
            "state": self.state,
            "since": None if self.since is None else self.since.isoformat(),
            "reason": self.reason,
            "calls_today": self.calls_today,
            "wrapup_s": self.wrapup_s,
        }


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    waiting: int
    longest_wait_s: int
    agents: Mapping[str, int]
    answered: int
    abandoned: int
    sla_pct: float | None
    members: tuple[AgentRow, ...] = ()
    calls: tuple[Mapping[str, Any], ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "waiting": self.waiting,
            "longest_wait_s": self.longest_wait_s,
            "agents": dict(self.agents),
            "answered": self.answered,
            "abandoned": self.abandoned,
            "sla_pct": self.sla_pct,
            "members": [m.as_json() for m in self.members],
            "calls": [dict(c) for c in self.calls],
        }


def _device_states(calls: Iterable[LiveCall]) -> dict[str, tuple[AgentState, datetime]]:
    """Each device's live state, in one pass over the calls' legs (a queue's board is asked
    for on every change: walking every call once per member made it members x calls, which
    500 agents with hundreds of live calls could not afford). In call order, a device's
    first answered leg makes it talking (it wins over any ringing), else its first ringing
    leg makes it ringing."""
    talking: dict[str, datetime] = {}
    ringing: dict[str, datetime] = {}
    for call in calls:
        for leg in call.legs:
            if leg.state == "answered":
                talking.setdefault(leg.device, leg.since)
            elif leg.state == "ringing":
                ringing.setdefault(leg.device, leg.since)
    states: dict[str, tuple[AgentState, datetime]] = {
        device: ("ringing", since) for device, since in ringing.items()
    }
    states.update((device, ("talking", since)) for device, since in talking.items())
    return states


def _seconds(now: datetime, then: datetime) -> int:
    return max(0, int((now - then).total_seconds()))


def _wrapping(ended: datetime | None, now: datetime, limit_s: int) -> int | None:
    """Seconds into wrap-up, or None when there is none (or it ran past `limit_s`)."""
    if ended is None:
        return None
    elapsed = (now - ended).total_seconds()
    return max(0, int(elapsed)) if elapsed < limit_s else None


def queue_stats(
    queue: str,
    calls: Iterable[LiveCall],
    members: Iterable[Member],
    tally: Tally,
    *,
    now: datetime,
    agent_of: Callable[[str], str | None] = lambda device: None,
    calls_today: Mapping[str, int] | None = None,
    customer_of: Mapping[str, str] | None = None,
    wrapups: Mapping[str, datetime] | None = None,
    wrapup_s: int = 0,
) -> QueueStats:
    """The figures of `queue`. `calls`: the tracker's snapshot (every queue's calls, since an
    agent talking on another queue's call is busy here too); `calls_today` by agent id;
    `customer_of`: customer name by call id, where known; `wrapups`: by device, when its
    last call ended while its disposition is not filed (wrap-up lasts `wrapup_s` at most)."""
    every = list(calls)
    mine = [c for c in every if c.queue == queue]
    waiting = [
        c for c in mine if c.answered_at is None and all(leg.state == "ringing" for leg in c.legs)
    ]
    longest = max((_seconds(now, c.started_at) for c in waiting), default=0)
    listed = [m for m in members if m.queue == queue]
    if not listed:  # no PBX listing: the agents on this queue's calls
        seen = dict.fromkeys(leg.device for c in mine for leg in c.legs)
        listed = [Member(queue, device) for device in seen]
    counts = {"available": 0, "ringing": 0, "talking": 0, "wrapup": 0, "paused": 0}
    rows: list[AgentRow] = []
    today = calls_today or {}
    ended = wrapups or {}
    states = _device_states(every)
    for member in sorted(listed, key=lambda m: m.device):
        live, since = states.get(member.device, (None, None))
        busy = live is not None or member.paused  # a pause (with its reason) says more
        wrapping = None if busy else _wrapping(ended.get(member.device), now, wrapup_s)
        state: AgentState = live or (
            "paused" if member.paused else "wrapup" if wrapping is not None else "available"
        )
        if wrapping is not None:
            since = ended[member.device]
        counts[state] += 1
        agent = agent_of(member.device)
        rows.append(
            AgentRow(
                agent=agent,
                device=member.device,
                name=member.name or agent or member.device,
                state=state,
                since=since,
                reason=member.reason if state == "paused" else "",
                calls_today=today.get(agent or member.device, 0),
                wrapup_s=wrapping,
            )
        )
    decided = tally.answered + tally.abandoned
    sla = round(100.0 * tally.within_sla / decided, 1) if decided else None
    names = customer_of or {}
    in_progress = []
    for call in sorted(mine, key=lambda c: c.started_at):
        talking = [leg.device for leg in call.legs if leg.state == "answered"]
        in_progress.append(
            {
                "call_id": call.call_id,
                "caller": call.caller,
                "customer": names.get(call.call_id) or call.caller_name or None,
                "agent": agent_of(talking[0]) or talking[0] if talking else None,
                "state": "talking" if talking else "waiting",
                "since": (call.answered_at or call.started_at).isoformat(),
                "wait_s": _seconds(call.answered_at or now, call.started_at),
            }
        )
    return QueueStats(
        queue=queue,
        waiting=len(waiting),
        longest_wait_s=longest,
        agents=counts,
        answered=tally.answered,
        abandoned=tally.abandoned,
        sla_pct=sla,
        members=tuple(rows),
        calls=tuple(in_progress),
    )
