from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bridge.crm.agents import create_agent
from bridge.models import CallAnswered, CallRinging
from tests.conftest import running_roster
from tests.crm.fixture_crm import ALICE
from tests.pops.conftest import recv_json, recv_until_pong, trace_events

AT = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)


async def closed_code(ws) -> int | None:
    """Wait for the server to close this connection; its close code."""
    try:
        async with asyncio.timeout(5):
            while True:
                await ws.recv()
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None


async def test_hello_gets_welcome_and_health_counts_the_agent(make_hub) -> None:
    env = await make_hub()
    await env.connect("2001")
    health = env.hub.health()
    assert health.state == "up" and health.detail["agents"] == 1


@pytest.mark.parametrize(
    "first",
    [
        json.dumps({"type": "hello", "token": "x" * 43}),
        json.dumps({"type": "hello"}),
        json.dumps({"type": "hello", "token": 42}),
        json.dumps({"type": "subscribe", "queue": "senior"}),
        "not json at all",
        json.dumps({"type": "hello", "token": "a\r\nb\x00'; DROP TABLE agents;--"}),
    ],
)
async def test_missing_or_wrong_token_is_closed_4001(make_hub, first: str) -> None:
    env = await make_hub()
    ws = await env.connect()
    await ws.send(first)
    assert await closed_code(ws) == 4001


async def test_silent_client_is_closed_4001_after_the_hello_timeout(make_hub) -> None:
    env = await make_hub(hello_timeout_s=0.2)
    ws = await env.connect()
    assert await closed_code(ws) == 4001


async def test_ringall_pops_only_the_rung_agents_and_retracts_the_loser(make_hub) -> None:
    env = await make_hub()
    winner, loser, bystander = (
        await env.connect("2001"),
        await env.connect("2002"),
        await env.connect("1001"),
    )
    events = env.play("vip-answered")
    call_id = events[0].call_id

    got = await recv_until_pong(winner)
    assert [m["type"] for m in got] == ["call.ringing", "call.answered", "call.ended"]
    ringing = got[0]
    assert ringing["call_id"] == call_id and ringing["caller"] == "+15551230001"
    assert ringing["queue"] == "senior" and ringing["caller_name"] == "Alice VIP"
    assert ringing["customer"]["id"] == ALICE and ringing["customer"]["tags"] == ["vip"]
    assert got[1]["agent"] == "2001"
    assert {"duration_s", "talk_s"} <= got[2].keys()
    for msg in got:
        assert datetime.fromisoformat(msg["at"]).tzinfo is not None

    lost = await recv_until_pong(loser)
    assert [m["type"] for m in lost] == ["call.ringing", "call.retracted"]
    assert lost[1]["call_id"] == call_id

    assert await recv_until_pong(bystander) == []


async def test_blind_transfer_moves_the_call_to_the_new_agent(make_hub) -> None:
    env = await make_hub()
    first, second = await env.connect("1001"), await env.connect("2001")
    env.play("blind-transfer")
    a = await recv_until_pong(first)
    # the transferring agent also learns when the new agent picks up
    assert [(m["type"], m.get("agent")) for m in a] == [
        ("call.ringing", None),
        ("call.answered", "1001"),
        ("call.transferred", "2001"),
        ("call.answered", "2001"),
        ("call.ended", None),
    ]
    b = await recv_until_pong(second)
    assert [m["type"] for m in b] == [
        "call.ringing",
        "call.transferred",
        "call.answered",
        "call.ended",
    ]
    assert b[0]["customer"]["name"] == "Bob Li"


async def test_unknown_caller_pops_with_a_null_customer(make_hub) -> None:
    env = await make_hub()
    ws = await env.connect("1001")
    await env.hub.handle(CallRinging("c-1", "1001", AT, "+15559990000", "Nobody", "support", ""))
    await env.hub.handle(CallRinging("c-2", "1001", AT, "anonymous", "", None, ""))
    got = await recv_until_pong(ws)
    assert [m["customer"] for m in got] == [None, None]
    assert got[1]["caller"] == "anonymous"


async def test_supervisor_follows_a_queue_and_an_agent_may_not(make_hub) -> None:
    env = await make_hub()
    env.tokens["boss"] = await create_agent(env.pool, "boss", "Boss", "supervisor", "9000")
    boss, agent = await env.connect("boss"), await env.connect("1001")
    await boss.send(json.dumps({"type": "subscribe", "queue": "senior"}))
    assert await recv_json(boss) == {"type": "subscribed", "queue": "senior"}
    await agent.send(json.dumps({"type": "subscribe", "queue": "senior"}))
    refused = await recv_json(agent)
    assert refused["type"] == "error" and refused["error"] == "forbidden"

    env.play("vip-answered")  # queue senior
    env.play("regular-answered")  # queue support
    got = await recv_until_pong(boss)
    assert [m["type"] for m in got] == ["call.ringing", "call.answered", "call.ended"]
    assert got[0]["queue"] == "senior" and got[1]["agent"] == "2001"
    assert got[0]["customer"]["restricted"] is False


async def test_customer_data_obeys_permissions(make_hub) -> None:
    env = await make_hub()
    await env.pool.execute(
        "INSERT INTO customer_owners (customer_id, agent_id) VALUES ($1, '2002')", ALICE
    )
    await env.pool.execute(
        "UPDATE customers SET attributes = '{\"lifetime_value\": 12000}' WHERE id = $1", ALICE
    )
    await env.pool.execute(
        "INSERT INTO orders (customer_id, reference, product, amount)"
        " VALUES ($1, 'o-1', 'Phone', 99)",
        ALICE,
    )
    await env.pool.execute(
        "INSERT INTO service_history (customer_id, summary, outcome, disposition)"
        " VALUES ($1, 'broken screen', 'answered', 'resolved')",
        ALICE,
    )
    env.tokens["boss"] = await create_agent(env.pool, "boss", "Boss", "supervisor", "9000")
    other, owner, boss = (
        await env.connect("2001"),
        await env.connect("2002"),
        await env.connect("boss"),
    )
    await boss.send(json.dumps({"type": "subscribe", "queue": "senior"}))
    await recv_json(boss)
    env.player("vip-answered").until(2)  # both agents ringing

    restricted = (await recv_until_pong(other))[0]["customer"]
    assert restricted["restricted"] is True
    assert restricted["name"] == "Alice Chen" and restricted["tags"] == ["vip"]
    assert restricted["last_outcome"]["disposition"] == "resolved"
    assert not {"attributes", "orders", "contracts", "history", "marketing"} & restricted.keys()

    for ws in (owner, boss):
        full = (await recv_until_pong(ws))[0]["customer"]
        assert full["restricted"] is False
        assert full["attributes"] == {"lifetime_value": 12000}
        assert full["orders"][0]["product"] == "Phone"
        assert full["history"][0]["summary"] == "broken screen"


async def test_reconnecting_client_gets_the_calls_in_progress(make_hub) -> None:
    env = await make_hub()
    player = env.player("vip-answered")
    player.until(3)  # ringing 2001, ringing 2002, answered 2001
    ws = await env.connect("2001")
    got = await recv_until_pong(ws)
    assert [m["type"] for m in got] == ["call.ringing", "call.answered"]
    assert got[0]["customer"]["id"] == ALICE and got[1]["agent"] == "2001"
    player.rest()
    assert [m["type"] for m in await recv_until_pong(ws)] == ["call.ended"]
    # after the end, a reconnect has nothing to catch up
    again = await env.connect("2001")
    assert await recv_until_pong(again) == []


async def test_slow_client_is_dropped_and_never_delays_a_fast_one(make_hub) -> None:
    env = await make_hub(client_queue=8)
    big = "x" * 30_000
    await env.pool.execute(
        "UPDATE customers SET attributes = jsonb_build_object('note', $2::text) WHERE id = $1",
        ALICE,
        big,
    )
    before = (
        REGISTRY.get_sample_value("crm_bridge_pops_dropped_clients_total", {"reason": "slow"})
        or 0.0
    )
    # The slow page never reads: its client stops reading from the socket after one frame.
    slow = await env.connect("2002", max_queue=1)
    fast = await env.connect("2001")
    received = 0
    target = 10_000
    all_in = asyncio.Event()

    async def read_fast() -> None:
        nonlocal received
        while True:
            # no per-message deadline: thousands of card look-ups queue on a loaded machine;
            # the bound on the whole wait is below
            msg = json.loads(await fast.recv())
            if msg["type"] == "call.ringing":
                received += 1
                if received >= target:
                    all_in.set()

    reader = asyncio.create_task(read_fast())
    sent = 0
    # Pop both agents until the slow one's queue overflows (socket buffers fill first).
    while "2002" in env.hub._clients and sent < 5000:
        for device in ("2001", "2002"):
            await env.hub.handle(
                CallRinging(f"call-{sent}", device, AT, "+15551230001", "Alice", "senior", "")
            )
        sent += 1
        # Let the cards looked up so far load, so each page's writer gets to its socket: the
        # slow page then blocks on a full socket (what "slow" means) instead of on a card,
        # however fast this machine is.
        await env.hub.drain()
    assert "2002" not in env.hub._clients
    target = sent
    if received >= target:
        all_in.set()
    async with asyncio.timeout(60):  # a "did not hang" bound: megabytes on a loaded machine
        await all_in.wait()
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    assert received == sent
    after = REGISTRY.get_sample_value("crm_bridge_pops_dropped_clients_total", {"reason": "slow"})
    assert after == before + 1
    # the fast page still gets a new pop at once
    await env.hub.handle(CallAnswered("call-0", "2001", AT))
    assert (await recv_json(fast))["type"] == "call.answered"
    slow.transport.abort()  # it never reads, so it would never see the close either


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("not json", 4002),
        ("[1, 2]", 4002),
        (json.dumps({"type": "dance"}), 4002),
        (json.dumps({"type": 7}), 4002),
        (json.dumps({"type": "subscribe", "queue": "a\r\nb"}), 4002),
        (json.dumps({"type": "subscribe", "queue": ["x"]}), 4002),
        (b"\x00\x01binary", 1003),
        (json.dumps({"type": "ping", "pad": "x" * 70_000}), 1009),
    ],
)
async def test_malformed_or_oversized_messages_close_with_the_documented_code(
    make_hub, message: str | bytes, code: int
) -> None:
    env = await make_hub()
    ws = await env.connect("1001")
    await ws.send(message)
    assert await closed_code(ws) == code
    await env.hub.wait_until(lambda: env.hub.connected_agents == 0)


async def test_origin_is_checked(make_hub) -> None:
    env = await make_hub()
    with pytest.raises(InvalidStatus) as refused:
        await connect(env.url, origin="http://evil.example")
    assert refused.value.response.status_code == 403
    ws = await env.connect(origin="http://agents.example:8080")
    await ws.send(json.dumps({"type": "hello", "token": env.tokens["1001"]}))
    assert (await recv_json(ws))["type"] == "welcome"


async def test_default_origins_come_from_the_agent_page(pool) -> None:
    from bridge.config import build_config
    from bridge.crm.directory import PostgresDirectory
    from bridge.pops.sources import build_pop_hub

    config = build_config({"pops": {"port": 0}, "http": {"port": 8080}}, {}, runtime=False)
    async with running_roster(pool) as roster:
        await _origins_from_the_agent_page(
            build_pop_hub(pool, config, PostgresDirectory(pool), roster)
        )


async def _origins_from_the_agent_page(hub) -> None:
    await hub.start()
    try:
        url = f"ws://127.0.0.1:{hub.port}"
        for ok in ("http://localhost:8080", "http://127.0.0.1:8080"):
            async with connect(url, origin=ok):
                pass
        with pytest.raises(InvalidStatus):
            await connect(url, origin="http://localhost:9999")
    finally:
        await hub.stop()


async def test_submitted_events_keep_each_calls_order_across_interleaved_calls(make_hub) -> None:
    env = await make_hub()
    winner, loser, other = (
        await env.connect("2001"),
        await env.connect("2002"),
        await env.connect("1001"),
    )
    vip, regular = trace_events("vip-answered"), trace_events("regular-answered")
    # interleave the two calls' events; submit() returns before they are handled
    for i in range(max(len(vip), len(regular))):
        for events in (vip, regular):
            if i < len(events):
                await env.hub.submit(events[i])
    await env.hub.drain()
    assert [m["type"] for m in await recv_until_pong(winner)] == [
        "call.ringing",
        "call.answered",
        "call.ended",
    ]
    assert [m["type"] for m in await recv_until_pong(loser)] == ["call.ringing", "call.retracted"]
    assert [m["type"] for m in await recv_until_pong(other)] == [
        "call.ringing",
        "call.answered",
        "call.ended",
    ]


async def test_pops_are_counted_in_the_metrics(make_hub) -> None:
    def sample(name: str, labels: dict[str, str] | None = None) -> float:
        return REGISTRY.get_sample_value(name, labels or {}) or 0.0

    env = await make_hub()
    ws = await env.connect("1001")
    sent = sample("crm_bridge_pops_sent_total", {"type": "call.ringing"})
    timed = sample("crm_bridge_pops_latency_seconds_count")
    assert sample("crm_bridge_pops_connected") >= 1
    env.play("regular-answered")
    assert len(await recv_until_pong(ws)) == 3
    assert sample("crm_bridge_pops_sent_total", {"type": "call.ringing"}) == sent + 1
    assert sample("crm_bridge_pops_latency_seconds_count") == timed + 1
