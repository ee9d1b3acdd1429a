"""The hub's part of the desk and the wallboard: `status` pauses through the board and every
page of the agent hears the result; `queue.stats` reach the followers of a queue only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from bridge.crm.agents import create_agent, rotate_token
from bridge.errors import LinkDown
from bridge.models import CallEnded
from bridge.wallboard.board import WallBoard
from tests.pops.conftest import HubEnv, recv_json, recv_until_pong


class FakeBoard:
    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.pauses: list[tuple[str, bool, str]] = []
        self.states: dict[str, tuple[bool, str]] = {}

    async def pause(self, device: str, paused: bool, reason: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.pauses.append((device, paused, reason))
        self.states[device] = (paused, reason)

    def status_of(self, device: str) -> tuple[bool, str] | None:
        return self.states.get(device)

    def message(self, queue: str) -> dict[str, Any]:
        return {"type": "queue.stats", "queue": queue, "waiting": 0}


async def test_a_pause_goes_to_the_board_and_every_page_of_the_agent_hears_it(
    make_hub: Callable[..., Awaitable[HubEnv]],
) -> None:
    env = await make_hub()
    board = FakeBoard()
    env.hub.use_board(board)
    first = await env.connect("2001")
    second = await env.connect("2001")
    other = await env.connect("2002")
    await first.send(json.dumps({"type": "status", "paused": True, "reason": "lunch"}))
    expected = {"type": "status", "paused": True, "reason": "lunch"}
    assert await recv_json(first) == expected
    assert await recv_json(second) == expected
    assert await recv_until_pong(other) == []
    assert board.pauses == [("2001", True, "lunch")]
    # a page opened later is told at once
    third = await env.connect("2001")
    assert await recv_until_pong(third) == [expected]


async def test_a_refused_pause_is_an_error_for_the_asking_page_only(
    make_hub: Callable[..., Awaitable[HubEnv]],
) -> None:
    env = await make_hub()
    env.hub.use_board(FakeBoard(LinkDown("the AMI link is not connected")))
    page = await env.connect("2001")
    await page.send(json.dumps({"type": "status", "paused": True, "reason": "break"}))
    error = await recv_json(page)
    assert error["type"] == "error" and error["error"] == "status_failed"
    assert "not connected" in error["reason"]


async def test_without_a_board_pausing_is_unavailable(
    make_hub: Callable[..., Awaitable[HubEnv]],
) -> None:
    env = await make_hub()
    page = await env.connect("2001")
    await page.send(json.dumps({"type": "status", "paused": False}))
    assert (await recv_json(page))["error"] == "unavailable"


async def test_queue_stats_reach_the_followers_of_the_queue_only(
    make_hub: Callable[..., Awaitable[HubEnv]],
) -> None:
    env = await make_hub()
    env.tokens["boss"] = await create_agent(env.pool, "boss", "Boss", "supervisor", "9001")
    board = WallBoard(env.tracker, agent_of=env.roster.agent_id_of, queues=["support"])
    env.hub.use_board(board)
    board.on_stats(env.hub.publish_queue, wanted=env.hub.follows)
    boss = await env.connect("boss")
    nosy = await env.connect("1001")
    assert not env.hub.follows("support")
    await boss.send(json.dumps({"type": "subscribe", "queue": "support"}))
    got = await recv_until_pong(boss)
    assert [m["type"] for m in got] == ["subscribed", "queue.stats"]
    assert env.hub.follows("support") and not env.hub.follows("senior")
    assert got[1]["queue"] == "support" and got[1]["abandoned"] == 0
    await nosy.send(json.dumps({"type": "subscribe", "queue": "support"}))
    assert (await recv_json(nosy))["error"] == "forbidden"

    events = env.player("abandoned").rest()
    board.dispatch(events)
    ended = [e.summary for e in events if isinstance(e, CallEnded)]
    assert [(s.queue, s.outcome) for s in ended] == [("support", "abandoned")]
    stats = [m for m in await recv_until_pong(boss) if m["type"] == "queue.stats"]
    assert stats and stats[-1]["abandoned"] == 1 and stats[-1]["answered"] == 0
    assert stats[-1]["sla_pct"] == 0.0
    assert [m for m in await recv_until_pong(nosy) if m["type"] == "queue.stats"] == []


class GatedBoard(FakeBoard):
    """A board whose pauses wait at a gate, as the PBX's answer does."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.started: list[tuple[str, bool, str]] = []
        self.first = asyncio.Event()

    async def pause(self, device: str, paused: bool, reason: str) -> None:
        self.started.append((device, paused, reason))
        self.first.set()
        await self.gate.wait()
        await super().pause(device, paused, reason)


async def test_a_flood_of_status_messages_is_one_pause_at_a_time_and_the_last_one_wins(
    make_hub: Callable[..., Awaitable[HubEnv]],
) -> None:
    """A stuck key or a hostile page must not turn into hundreds of AMI actions at once."""
    env = await make_hub()
    board = GatedBoard()
    env.hub.use_board(board)
    page = await env.connect("2001")
    for n in range(200):
        reason = f"r{n}"
        await page.send(json.dumps({"type": "status", "paused": n % 2 == 0, "reason": reason}))
    assert await recv_until_pong(page) == []  # every status read, none answered yet
    assert board.started == [("2001", True, "r0")]  # one in flight, the rest wait
    board.gate.set()
    last = {"type": "status", "paused": False, "reason": ""}  # r199: a resume
    seen = [await recv_json(page) for _ in range(2)]
    assert seen == [{"type": "status", "paused": True, "reason": "r0"}, last]
    assert board.pauses == [("2001", True, "r0"), ("2001", False, "")]
    assert await recv_until_pong(page) == []


async def test_a_status_waiting_behind_another_is_dropped_when_the_token_is_revoked(
    make_hub: Callable[..., Awaitable[HubEnv]],
) -> None:
    env = await make_hub()
    board = GatedBoard()
    env.hub.use_board(board)
    page = await env.connect("2001")
    await page.send(json.dumps({"type": "status", "paused": True, "reason": "lunch"}))
    await board.first.wait()
    await page.send(json.dumps({"type": "status", "paused": False}))
    await page.send(json.dumps({"type": "ping"}))
    assert await recv_json(page) == {"type": "pong"}
    assert await rotate_token(env.pool, "2001") is not None
    await env.hub.wait_until(lambda: "2001" not in env.hub._clients)
    board.gate.set()
    await asyncio.gather(*env.hub._tasks)  # every status under way has finished
    assert board.pauses == [("2001", True, "lunch")]  # the revoked page's resume never ran
