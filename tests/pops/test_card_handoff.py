"""Routing hands each call's customer and reason to the pops: the ringing pop comes from
memory, filtered per agent, and a change notice still shows on the next pop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bridge.config import build_config
from bridge.crm.directory import PostgresDirectory
from bridge.models import Customer, Decision, InboundCall
from bridge.pops.handoff import CallHandoff
from bridge.pops.sources import PostgresCards
from bridge.routing.service import RouteService
from tests.crm.fixture_crm import ALICE, BOB
from tests.pops.conftest import recv_until_pong
from tests.pops.test_card_cache import Notices, silently

ALICE_CUSTOMER = Customer(ALICE, "Alice Chen", ("vip",))
VIP_ROUTE = {"rule": "vip", "queue": "senior", "priority": 5, "degraded": False}


def inbound(uniqueid: str, linkedid: str, caller: str = "+15551230001") -> InboundCall:
    return InboundCall(
        raw_caller=caller,
        caller=caller,
        caller_name="",
        did="18005550100",
        at=datetime(2026, 11, 23, 20, 4, tzinfo=UTC),
        channel="PJSIP/trunk-00000001",
        uniqueid=uniqueid,
        linkedid=linkedid,
    )


VIP_CALL = inbound("1795464246.1", "1795464246.0")  # the AGI session of vip-answered
VIP_DECISION = Decision("senior", 5, "vip", ALICE_CUSTOMER)


# --- the hand-off map ---------------------------------------------------------------------


def test_a_decision_is_kept_under_the_linkedid_and_the_uniqueid_first_one_wins() -> None:
    handoff = CallHandoff()
    handoff.note(VIP_CALL, VIP_DECISION)
    handoff.note(VIP_CALL, Decision("support", 0, "default", None, degraded=True))
    for key in ("1795464246.0", "1795464246.1"):
        routed = handoff.get(key)
        assert routed is not None
        assert (routed.customer_id, routed.route) == (ALICE, VIP_ROUTE)
    assert handoff.get("1795464246.2") is None


def test_the_map_forgets_after_its_ttl_and_stays_bounded() -> None:
    now = [0.0]
    handoff = CallHandoff(max_calls=3, ttl_s=60, clock=lambda: now[0])
    handoff.note(inbound("1.0", "1.0"), VIP_DECISION)
    now[0] = 61
    assert handoff.get("1.0") is None
    for n in range(2, 7):
        handoff.note(inbound(f"{n}.0", f"{n}.0"), VIP_DECISION)
    assert len(handoff) == 3
    assert handoff.get("3.0") is None and handoff.get("6.0") is not None


def test_hostile_call_ids_are_not_kept() -> None:
    handoff = CallHandoff()
    handoff.note(inbound("a\x00b", "x" * 151), VIP_DECISION)
    handoff.note(inbound("", ""), VIP_DECISION)
    assert len(handoff) == 0
    assert handoff.get("a\x00b") is None and handoff.get("") is None


# --- the route service's hook ----------------------------------------------------------


class _NoDirectory:
    async def lookup(self, e164: str) -> Customer | None:
        return None


class _NoRules:
    async def current(self) -> list[Any]:
        return []


async def test_the_route_service_hands_each_recorded_decision_over() -> None:
    service = RouteService(_NoDirectory(), _NoRules(), build_config({}, {}, runtime=False))
    seen: list[tuple[InboundCall, Decision]] = []

    def broken(call: InboundCall, decision: Decision) -> None:
        raise RuntimeError("a broken hook must not cost the caller anything")

    service.on_routed(broken)
    service.on_routed(lambda call, decision: seen.append((call, decision)))
    await service.record(VIP_CALL, VIP_DECISION, None)
    assert seen == [(VIP_CALL, VIP_DECISION)]


# --- through the hub --------------------------------------------------------------------


async def test_a_routed_call_pops_from_memory_filtered_per_agent_and_follows_notices(
    pool: asyncpg.Pool[Any], make_hub: Any
) -> None:
    directory = PostgresDirectory(pool)
    notices = Notices(directory)
    cards = PostgresCards(pool, directory, "US")
    await directory.start()
    notices.heard.clear()  # the drop-everything of the first LISTEN
    try:
        env = await make_hub(cards=cards)
        async with pool.acquire() as conn, conn.transaction():  # one notice
            await conn.execute("INSERT INTO customer_owners VALUES ($1, '2002')", ALICE)
            await conn.execute(
                'UPDATE customers SET attributes = \'{"tier": "gold"}\' WHERE id = $1', ALICE
            )
        await notices.wait_for(ALICE)
        cards.routed(VIP_CALL, VIP_DECISION)  # what the AGI session's record() does
        await cards.cache.get(ALICE)  # the prefetch routing started has landed
        # Changed behind the notices' back: what the pop shows must come from memory.
        await silently(pool, "UPDATE customers SET name = 'Not From Memory' WHERE id = $1", ALICE)
        assert not await pool.fetchval("SELECT count(*) FROM route_decisions")

        other, owner = await env.connect("2001"), await env.connect("2002")
        env.play("vip-answered")
        restricted = (await recv_until_pong(other))[0]
        assert restricted["type"] == "call.ringing" and restricted["route"] == VIP_ROUTE
        assert restricted["customer"]["name"] == "Alice Chen"
        assert restricted["customer"]["restricted"] is True
        assert "attributes" not in restricted["customer"]
        full = next(m for m in await recv_until_pong(owner) if m["type"] == "call.ringing")
        assert full["customer"]["restricted"] is False
        assert full["customer"]["attributes"] == {"tier": "gold"}

        # A change with its notice: the next pop (the same call again, on a second hub
        # sharing the cards) shows the new value.
        await pool.execute("UPDATE customers SET name = 'Alice Wong' WHERE id = $1", ALICE)
        await notices.wait_for(ALICE)
        again = await make_hub(cards=cards)
        page = await again.connect("2001")
        again.play("vip-answered")
        ringing = (await recv_until_pong(page))[0]
        assert ringing["customer"]["name"] == "Alice Wong" and ringing["route"] == VIP_ROUTE
    finally:
        await directory.stop()


async def test_a_transfer_after_a_change_notice_shows_the_new_card(
    pool: asyncpg.Pool[Any], make_hub: Any
) -> None:
    """The hub looks a call's card up once; a change notice during the call must still
    reach the agent the call is transferred to (not the card of the first ringing)."""
    directory = PostgresDirectory(pool)
    notices = Notices(directory)
    cards = PostgresCards(pool, directory, "US")
    await directory.start()
    notices.heard.clear()
    try:
        env = await make_hub(cards=cards)
        first, second = await env.connect("1001"), await env.connect("2001")
        player = env.player("blind-transfer")
        player.until(1)  # 1001 rings: the call's card is looked up
        async with asyncio.timeout(5):
            await env.hub.drain()
        ringing = (await recv_until_pong(first))[0]
        assert ringing["type"] == "call.ringing" and ringing["customer"]["name"] == "Bob Li"
        await pool.execute("UPDATE customers SET name = 'Bob Lee' WHERE id = $1", BOB)
        await notices.wait_for(BOB)
        player.rest()  # ann answers and transfers to cat (2001), who rings
        transferred = (await recv_until_pong(second))[0]
        assert transferred["type"] == "call.ringing"
        assert transferred["customer"]["name"] == "Bob Lee"
    finally:
        await directory.stop()


async def test_an_unrouted_call_still_gets_its_card_and_reason_from_the_database(
    pool: asyncpg.Pool[Any], make_hub: Any
) -> None:
    directory = PostgresDirectory(pool)
    cards = PostgresCards(pool, directory, "US", handoff=CallHandoff())
    env = await make_hub(cards=cards)
    await pool.execute(
        "INSERT INTO route_decisions (uniqueid, linkedid, queue, rule, priority)"
        " VALUES ('1795464246.1', '1795464246.0', 'senior', 'vip', 5)"
    )
    other = await env.connect("2001")
    env.play("vip-answered")
    async with asyncio.timeout(5):
        await env.hub.drain()
    ringing = (await recv_until_pong(other))[0]
    assert ringing["customer"]["name"] == "Alice Chen" and ringing["route"] == VIP_ROUTE
