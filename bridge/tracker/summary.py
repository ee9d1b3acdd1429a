"""The summary an ended call carries (`CallEnded`): built once, from the call's final state.

Durations. ``duration_s`` is the caller's own channel lifetime (the root channel, else the
call's), never stretched to the talk figures. A recording path is kept only when someone
answered: MixMonitor runs from before ``Queue()``, so an unanswered call leaves an empty file.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from bridge.models import AgentLeg, CallSummary
from bridge.tracker.calls import Call, Leg


def answer_from_talk(call: Call, leg: Leg, ended_at: datetime) -> datetime:
    """A leg found up at a resync answered before we looked, not when we looked: its
    end less Asterisk's own talk figure (AgentComplete, Cdr) is closer (a restart
    12 s into a call was recorded as answered 12 s late on the lab)."""
    assert leg.answered_at is not None
    talk = leg.talk_queue if leg.talk_queue is not None else leg.talk_cdr
    if talk is None:
        return leg.answered_at
    back = (leg.ended_at or ended_at) - timedelta(seconds=talk)
    return min(leg.answered_at, max(back, call.started_at))


def summarize(call: Call, ended_at: datetime, *, expect_cdr: bool | None) -> CallSummary:
    """What `CallEnded` carries: who answered when, talk and duration, the outcome.

    `expect_cdr`: Cdrs flow on this link, so a talk time from timestamps is marked inferred."""
    inferred = set(call.inferred)
    agents: list[AgentLeg] = []
    answered_at = {
        id(leg): answer_from_talk(call, leg, ended_at) if leg.answer_inferred else at
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
            if expect_cdr:
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
