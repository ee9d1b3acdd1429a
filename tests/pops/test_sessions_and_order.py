"""Sessions follow their token on every bridge sharing the database, and each agent's pops
leave in the order the PBX events arrived, whatever the card lookups cost."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from websockets.exceptions import ConnectionClosed

from bridge.crm import agents
from bridge.models import CallAnswered, CallRetracted, CallRinging, CustomerCard
from tests.pops.conftest import recv_json, recv_until_pong

AT = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)


async def close_code(ws) -> int | None:
    try:
        async with asyncio.timeout(10):
            while True:
                await ws.recv()
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None


async def test_rotating_a_token_closes_the_agents_pages_on_every_bridge_with_4003(
    make_hub,
) -> None:
    one, two = await make_hub(), await make_hub()  # two bridges, one database
    pages = [await one.connect("1001"), await two.connect("1001"), await one.connect("1001")]
    bystander = await one.connect("1002")

    new_token = await agents.rotate_token(one.pool, "1001")
    assert new_token is not None

    assert [await close_code(ws) for ws in pages] == [4003, 4003, 4003]
    await one.hub.wait_until(lambda: "1001" not in one.hub._clients)
    await two.hub.wait_until(lambda: "1001" not in two.hub._clients)
    # nothing is sent after: a call ringing 1001 reaches no page of it; 1002 is untouched
    one.hub.dispatch([CallRinging("c-1", "1001", AT, "+15551230001", "Alice", "support", "")])
    assert await recv_until_pong(bystander) == []
    # the old token is refused, the new one welcomed
    old = await one.connect()
    await old.send(json.dumps({"type": "hello", "token": one.tokens["1001"]}))
    assert await close_code(old) == 4001
    fresh = await two.connect()
    await fresh.send(json.dumps({"type": "hello", "token": new_token}))
    assert await recv_json(fresh) == {"type": "welcome", "agent": "1001"}


async def test_disabling_an_agent_closes_its_pages_with_4003_and_refuses_it_after(
    make_hub,
) -> None:
    env = await make_hub()
    page = await env.connect("2001")
    assert await agents.set_active(env.pool, "2001", False)
    assert await close_code(page) == 4003
    again = await env.connect()
    await again.send(json.dumps({"type": "hello", "token": env.tokens["2001"]}))
    assert await close_code(again) == 4001


async def test_a_deleted_agent_is_closed_too(make_hub) -> None:
    env = await make_hub()
    page = await env.connect("2002")
    await env.pool.execute("DELETE FROM agents WHERE id = '2002'")
    assert await close_code(page) == 4003


async def test_a_name_change_keeps_the_session_open(make_hub) -> None:
    env = await make_hub()
    page = await env.connect("1002")
    changed = asyncio.Event()
    env.roster.on_change(lambda agent_id: agent_id == "1002" and changed.set())
    await env.pool.execute("UPDATE agents SET name = 'Ben B.' WHERE id = '1002'")
    async with asyncio.timeout(10):
        await changed.wait()
    renamed = env.roster.get("1002")
    assert renamed is not None and renamed.name == "Ben B."
    assert await recv_until_pong(page) == []  # still open, nothing sent


async def test_an_agents_pops_leave_in_pbx_order_whatever_the_card_lookups_cost(
    make_hub,
) -> None:
    slow_card = asyncio.Event()

    async def cards(caller: str) -> CustomerCard | None:
        if caller == "+15551230001":
            await slow_card.wait()  # this lookup takes as long as the test wants
        return CustomerCard(id=f"cust{caller}", name=caller)

    env = await make_hub(card_for_caller=cards)
    page = await env.connect("1001")
    env.hub.dispatch(
        [
            CallRinging("slow", "1001", AT, "+15551230001", "A", "support", ""),
            CallRinging("fast", "1001", AT, "+15551230002", "B", "support", ""),
            CallRetracted("slow", "1001", AT, "no_answer"),
            CallAnswered("fast", "1001", AT),
        ]
    )
    await page.send(json.dumps({"type": "ping"}))
    slow_card.set()
    got = [await recv_json(page) for _ in range(5)]
    assert [(m.get("call_id", ""), m["type"]) for m in got] == [
        ("slow", "call.ringing"),
        ("fast", "call.ringing"),
        ("slow", "call.retracted"),
        ("fast", "call.answered"),
        ("", "pong"),
    ]
    assert got[0]["customer"]["name"] == "+15551230001"
    assert got[1]["customer"]["name"] == "+15551230002"


async def test_a_page_waiting_on_slow_cards_is_not_dropped_as_slow(make_hub) -> None:
    slow_card = asyncio.Event()

    async def cards(caller: str) -> CustomerCard | None:
        await slow_card.wait()
        return None

    env = await make_hub(card_for_caller=cards, client_queue=4)
    page = await env.connect("1001")
    env.hub.dispatch(
        CallRinging(f"c{i}", "1001", AT, f"+1555123{i:04d}", "", None, "") for i in range(50)
    )
    slow_card.set()
    got = [await recv_json(page) for _ in range(50)]
    assert [m["call_id"] for m in got] == [f"c{i}" for i in range(50)]
    assert "1001" in env.hub._clients


async def test_a_supervisor_demoted_to_agent_is_closed_4003_and_follows_no_queue_after(
    make_hub,
) -> None:
    """A demotion must not leave an open page with a supervisor's rights: the queue it
    followed (every caller's full card) and the full card of other agents' customers."""
    env = await make_hub()
    env.tokens["boss"] = await agents.create_agent(env.pool, "boss", "Boss", "supervisor", "9000")
    boss = await env.connect("boss")
    await boss.send(json.dumps({"type": "subscribe", "queue": "senior"}))
    assert await recv_json(boss) == {"type": "subscribed", "queue": "senior"}

    await env.pool.execute("UPDATE agents SET role = 'agent' WHERE id = 'boss'")
    assert await close_code(boss) == 4003
    await env.hub.wait_until(lambda: "boss" not in env.hub._clients)
    assert "senior" not in env.hub._subscribers
    # the same (still valid) token now opens an agent's page, which may not follow a queue
    again = await env.connect("boss")
    await again.send(json.dumps({"type": "subscribe", "queue": "senior"}))
    refused = await recv_json(again)
    assert refused["type"] == "error" and refused["error"] == "forbidden"
    env.play("vip-answered")  # queue senior, rings 2001 only
    assert await recv_until_pong(again) == []


async def test_an_agent_promoted_to_supervisor_may_follow_a_queue_without_signing_in_again(
    make_hub,
) -> None:
    env = await make_hub()
    page = await env.connect("1002")
    changed = asyncio.Event()
    env.roster.on_change(lambda agent_id: agent_id == "1002" and changed.set())
    await env.pool.execute("UPDATE agents SET role = 'supervisor' WHERE id = '1002'")
    async with asyncio.timeout(10):
        await changed.wait()
    await page.send(json.dumps({"type": "subscribe", "queue": "senior"}))
    assert await recv_json(page) == {"type": "subscribed", "queue": "senior"}
