"""The board feeds wrap-up to the figures: a call that ended for an agent starts it; the
agent's disposition in `call_dispositions` (real PostgreSQL), `filed()`, or the
`[wallboard] wrapup_s` limit ends it; supervisors get a push each time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bridge.models import AgentLeg, CallEnded, CallSummary
from bridge.tracker.tracker import LiveCall
from bridge.wallboard.board import WallBoard
from bridge.wallboard.stats import Member

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
AGENTS = {"PJSIP-2001": "2001", "PJSIP-2002": "2002"}


class Nothing:
    def snapshot(self) -> list[LiveCall]:
        return []


class Pbx:
    async def members(self) -> list[Member]:
        return [Member("senior", "PJSIP-2001"), Member("senior", "PJSIP-2002")]

    async def pause(self, device: str, paused: bool, reason: str) -> int:
        return 1


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def ended(call_id: str, *devices: str, at: datetime = T0) -> CallEnded:
    started = at - timedelta(seconds=60)
    return CallEnded(
        call_id,
        at,
        CallSummary(
            call_id=call_id,
            caller="+15551230001",
            caller_name="",
            did="100",
            queue="senior",
            started_at=started,
            answered_at=started + timedelta(seconds=3),
            ended_at=at,
            duration_s=60,
            talk_s=57,
            outcome="answered",
            agents=tuple(AgentLeg(d, started + timedelta(seconds=3), 57) for d in devices),
            recording_path=None,
        ),
    )


async def board_with(pool: asyncpg.Pool[Any] | None, clock: Clock) -> tuple[WallBoard, list[Any]]:
    board = WallBoard(
        Nothing(),
        control=Pbx(),
        agent_of=AGENTS.get,
        wrapup_s=120,
        pool=pool,
        clock=clock,
        queues=["senior"],
    )
    pushed: list[Any] = []
    board.on_stats(lambda queue, message: pushed.append(message))
    await board.refresh()
    return board, pushed


def states(board: WallBoard) -> dict[str, tuple[str, int | None]]:
    return {m.agent or m.device: (m.state, m.wrapup_s) for m in board.stats("senior").members}


async def test_an_ended_call_puts_its_agents_in_wrap_up_until_filed(
    pool: asyncpg.Pool[Any],
) -> None:
    clock = Clock()
    board, pushed = await board_with(pool, clock)
    board.dispatch([ended("call-1", "PJSIP-2001", "PJSIP-2002")])
    clock.now = T0 + timedelta(seconds=30)
    assert states(board) == {"2001": ("wrapup", 30), "2002": ("wrapup", 30)}
    assert board.stats("senior").agents["wrapup"] == 2
    member = board.message("senior")
    assert member["type"] == "queue.stats"
    await pool.execute(
        "INSERT INTO call_dispositions (call_id, agent_id, disposition, filed_by)"
        " VALUES ('call-1', '2001', 'resolved', '2001')"
    )
    before = len(pushed)
    await board.sweep_wrapups()
    assert states(board) == {"2001": ("available", None), "2002": ("wrapup", 30)}
    assert len(pushed) > before  # supervisors see it at once
    board.filed("call-1", "2002")
    assert states(board)["2002"] == ("available", None)


async def test_wrap_up_ends_when_the_limit_passes(pool: asyncpg.Pool[Any]) -> None:
    clock = Clock()
    board, pushed = await board_with(pool, clock)
    board.dispatch([ended("call-2", "PJSIP-2001")])
    clock.now = T0 + timedelta(seconds=119)
    await board.sweep_wrapups()
    assert states(board)["2001"] == ("wrapup", 119)
    clock.now = T0 + timedelta(seconds=120)
    before = len(pushed)
    await board.sweep_wrapups()
    assert states(board)["2001"] == ("available", None)
    assert len(pushed) > before


async def test_a_disposition_of_another_call_does_not_end_wrap_up(
    pool: asyncpg.Pool[Any],
) -> None:
    clock = Clock()
    board, _ = await board_with(pool, clock)
    board.dispatch([ended("call-3", "PJSIP-2001")])
    await pool.execute(
        "INSERT INTO call_dispositions (call_id, agent_id, disposition, filed_by)"
        " VALUES ('call-older', '2001', 'resolved', '2001'),"
        "        ('call-3', '2002', 'resolved', '2002')"
    )
    await board.sweep_wrapups()
    board.filed("call-3", "2002")
    assert states(board)["2001"] == ("wrapup", 0)


async def test_wrap_up_zero_turns_it_off() -> None:
    clock = Clock()
    board = WallBoard(
        Nothing(), control=Pbx(), agent_of=AGENTS.get, wrapup_s=0, clock=clock, queues=["senior"]
    )
    await board.refresh()
    board.dispatch([ended("call-4", "PJSIP-2001")])
    assert states(board)["2001"] == ("available", None)


async def test_the_figures_of_a_queue_nobody_follows_are_not_built() -> None:
    """A busy queue of 500 members changes many times a second: its `queue.stats` are built
    only while some page follows it."""
    board = WallBoard(
        Nothing(), control=Pbx(), agent_of=AGENTS.get, clock=Clock(), queues=["senior"]
    )
    await board.refresh()
    built: list[str] = []
    build = board.message

    def counted(queue: str) -> dict[str, Any]:
        built.append(queue)
        return build(queue)

    board.message = counted  # type: ignore[method-assign]
    followed: set[str] = set()
    pushed: list[tuple[str, dict[str, Any]]] = []
    board.on_stats(lambda queue, message: pushed.append((queue, message)), followed.__contains__)
    board.dispatch([ended("call-5", "PJSIP-2001")])
    assert pushed == [] and built == []
    followed.add("senior")
    board.dispatch([ended("call-6", "PJSIP-2002")])
    assert built == ["senior"] and [queue for queue, _ in pushed] == ["senior"]
    assert pushed[0][1]["type"] == "queue.stats"
