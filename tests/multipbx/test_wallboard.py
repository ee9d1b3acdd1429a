"""A queue named alike on two PBXs is two queues on the wallboard: `east:support` and
`west:support`, each with its own calls, members and today's tallies, in `queue.stats`,
`GET /api/queues` and the pops' queue subscriptions. A single PBX's names are unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.models import CallRinging
from bridge.pbx.namespace import pbx_queue
from bridge.pops.protocol import PopProtocolError, Subscribe, parse_client_message
from bridge.pops.router import PopRouter
from bridge.tracker.tracker import LiveCall, LiveLeg
from bridge.wallboard.board import WallBoard
from bridge.wallboard.stats import Member
from tests.admin.api import Api, mount_admin_api
from tests.multipbx.test_agents_api import PBX_CONFIG
from tests.records.factory import make_ended

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def live(call_id: str, device: str | None = None, queue: str = "support") -> LiveCall:
    legs = () if device is None else (LiveLeg(device, f"PJSIP/{device}-1", "ringing", NOW),)
    return LiveCall(call_id, "+15551230001", "", "18005550100", queue, NOW, None, legs)


class Calls:
    def __init__(self, calls: list[LiveCall]) -> None:
        self.calls = calls

    def snapshot(self) -> list[LiveCall]:
        return list(self.calls)


class Members:
    """The PBXs' queue members as `PbxQueues` lists them: devices namespaced."""

    def __init__(self, members: list[Member]) -> None:
        self.listed = members

    async def members(self) -> list[Member]:
        return list(self.listed)

    async def pause(self, device: str, paused: bool, reason: str) -> int:
        return 0


def test_a_namespaced_call_id_or_device_names_its_pbxs_queue() -> None:
    assert pbx_queue("east:1700000000.42", "support") == "east:support"
    assert pbx_queue("west:1001", "support") == "west:support"
    assert pbx_queue("1700000000.42", "support") == "support"  # a single PBX's
    assert pbx_queue("c2d-00ff", "support") == "support"
    assert pbx_queue("East:1.1", "support") == "support"  # no PBX name
    assert pbx_queue("east:1.1", "") == ""


async def board_of_two(pool: asyncpg.Pool[Any]) -> WallBoard:
    calls = Calls([live("east:1.1", "east:1001"), live("west:1.1"), live("west:2.2")])
    control = Members([Member("support", "east:1001"), Member("support", "west:1001")])
    board = WallBoard(calls, control=control, pool=pool, queues=["east:support"], clock=lambda: NOW)
    await pool.execute(
        "INSERT INTO call_records (call_id, direction, caller, queue, started_at, outcome)"
        " VALUES ('east:9.9', 'inbound', '+15551230002', 'support', $1, 'abandoned')",
        NOW - timedelta(seconds=1),
    )
    await board.seed()
    await board.refresh()
    return board


async def test_each_pbxs_queue_has_its_own_figures(pool: asyncpg.Pool[Any]) -> None:
    board = await board_of_two(pool)
    board.dispatch([make_ended("west:3.3", device=None, start=NOW - timedelta(seconds=9))])
    assert board.queues() == ["east:support", "west:support"]
    east, west = board.all_stats()
    assert (east.queue, east.waiting, east.abandoned) == ("east:support", 1, 1)
    assert (west.queue, west.waiting, west.abandoned) == ("west:support", 2, 1)
    assert [m.device for m in east.members] == ["east:1001"]
    assert east.members[0].state == "ringing"
    assert [m.device for m in west.members] == ["west:1001"]
    assert [c["call_id"] for c in west.calls] == ["west:1.1", "west:2.2"]
    message = board.message("west:support")
    assert message["type"] == "queue.stats" and message["queue"] == "west:support"
    assert board.stats("support").waiting == 0  # no PBX has a bare `support` here
    # what agents' callbacks filter on stays the PBX's own queue name
    assert board.queues_of("east:1001") == {"support"}


async def test_the_queues_api_lists_each_pbxs_queue(
    pool: asyncpg.Pool[Any], tokens: dict[str, str]
) -> None:
    app = web.Application()
    mount_admin_api(app, pool, PBX_CONFIG, await board_of_two(pool))
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    try:
        status, body = await Api(client, tokens["admin"]).call("GET", "/api/queues")
    finally:
        await client.close()
    assert status == 200
    figures = {q["queue"]: q["waiting"] for q in body["queues"]}
    assert figures == {"east:support": 1, "west:support": 2}


def test_a_single_pbxs_queues_keep_their_names() -> None:
    board = WallBoard(Calls([live("1700000000.1", "1001")]), queues=["support"])
    assert board.queues() == ["support"]
    assert board.stats("support").waiting == 1


def test_queue_pops_go_to_the_followers_of_the_pbxs_queue() -> None:
    router = PopRouter(lambda device: None)
    ringing = CallRinging("west:1.1", "west:1001", NOW, "+15551230001", "", "support", "PJSIP/1")
    pops = router.route(ringing)
    assert [p.queue for p in pops if p.queue is not None] == ["west:support"]
    assert all(p.message["queue"] == "support" for p in pops)  # the call's own queue name
    call = live("west:1.1", "west:1001")
    assert router.catch_up_queue("west:support", [call])
    assert router.catch_up_queue("east:support", [call]) == []
    assert router.catch_up_queue("support", [call]) == []


@pytest.mark.parametrize("queue", ["east:support", "support", "a-b:x.y_z"])
def test_a_pop_page_subscribes_to_a_pbxs_queue(queue: str) -> None:
    assert parse_client_message(f'{{"type": "subscribe", "queue": "{queue}"}}') == Subscribe(queue)


@pytest.mark.parametrize("queue", ["East:support", ":support", "east:", "a:b:c", "east:sup port"])
def test_a_malformed_queue_is_refused(queue: str) -> None:
    with pytest.raises(PopProtocolError):
        parse_client_message(f'{{"type": "subscribe", "queue": "{queue}"}}')
