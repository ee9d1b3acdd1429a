"""Hand-built end events for tests that need many calls or hostile values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bridge.models import AgentLeg, CallEnded, CallSummary

T0 = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)


def make_ended(
    call_id: str,
    *,
    caller: str = "+15551230002",
    device: str | None = "1001",
    talk_s: int = 30,
    queue: str | None = "support",
    recording: str | None = None,
    inferred: tuple[str, ...] = (),
    start: datetime = T0,
) -> CallEnded:
    answered = start + timedelta(seconds=5)
    ended = answered + timedelta(seconds=talk_s)
    agents = (AgentLeg(device, answered, talk_s),) if device else ()
    summary = CallSummary(
        call_id=call_id,
        caller=caller,
        caller_name="",
        did="18005550100",
        queue=queue,
        started_at=start,
        answered_at=answered if agents else None,
        ended_at=ended,
        duration_s=int((ended - start).total_seconds()),
        talk_s=talk_s if agents else 0,
        outcome="answered" if agents else "abandoned",
        agents=agents,
        recording_path=recording,
        uniqueids=(call_id, f"{call_id}-b"),
        inferred=inferred,
    )
    return CallEnded(call_id, ended, summary)
