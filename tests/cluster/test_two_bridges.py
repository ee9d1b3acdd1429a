"""Issue 18's proof: two real `crm-bridge run` processes on one database.

(a) the instance holding the jobs' lease is SIGKILLed while FastAGI traffic flows: the other
    reports itself leader and runs the jobs (its reconciliation runs), and kept routing;
(b) both are linked to one simulated PBX and both see a call end: one row (and the agent
    whose page the other instance holds gets the pops from it);
(c) a token rotated through one instance's admin API closes (4003) the agent's page held by
    the other.

Each process keeps a pool of 3 connections plus its lease's: with the test's own pool the
suite stays well under 20 connections.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import websockets

from bridge.crm.agents import create_agent
from bridge.sim import AmiServer, AmiUser, FastClock, SimPbx, lab_config
from tests.agi.client import header, play_asterisk
from tests.cluster.bridges import Bridge, detail, free_port, peers, role
from tests.crm.fixture_crm import ALICE, load_trace_crm

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as exits:
        yield exits


async def started(stack: AsyncExitStack, bridge: Bridge) -> Bridge:
    stack.push_async_callback(bridge.stop)
    await bridge.start()
    return bridge


async def leader_then_standby(stack: AsyncExitStack, a: Bridge, b: Bridge) -> None:
    """`a` starts alone and leads; `b` joins as standby, and each sees the other."""
    await started(stack, a)
    await a.until(lambda h: role(h) == "leader")
    await started(stack, b)
    await b.until(lambda h: role(h) == "standby" and peers(h) == [a.id])
    await a.until(lambda h: peers(h) == [b.id])


class Traffic:
    """FastAGI route requests to each bridge in turn, until stopped; counts answers."""

    def __init__(self, bridges: list[Bridge]) -> None:
        self.bridges = bridges
        self.answered: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.dead: set[str] = set()  # killed on purpose: not asked any more
        self.changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Traffic:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        n = 0
        while True:
            for bridge in self.bridges:
                if bridge.id in self.dead:
                    continue
                n += 1
                try:
                    result = await play_asterisk(
                        bridge.agi_port, header(uniqueid=f"900.{n}"), linkedid=f"900.{n}"
                    )
                    ok = result.variables.get("BRIDGE_QUEUE") == "senior"
                except (OSError, TimeoutError, AssertionError):
                    ok = False
                async with self.changed:
                    (self.answered if ok else self.failed)[bridge.id] += 1
                    self.changed.notify_all()

    async def wait(self, bridge: Bridge, answered: int) -> None:
        async with asyncio.timeout(90), self.changed:
            await self.changed.wait_for(lambda: self.answered[bridge.id] >= answered)


async def test_the_standby_takes_over_the_jobs_when_the_leader_is_killed_mid_traffic(
    tmp_path: Path, database_url: str, pool: asyncpg.Pool[Any], stack: AsyncExitStack
) -> None:
    await load_trace_crm(pool)
    reconcile = "[ami]\nenabled = false\n[pbx]\nreconcile_s = 1.0\n"
    a = Bridge(tmp_path, "bridge-a", database_url, reconcile)
    b = Bridge(tmp_path, "bridge-b", database_url, reconcile)
    await leader_then_standby(stack, a, b)
    standby = await b.health()
    assert standby is not None and standby["components"]["reconcile"]["state"] == "standby"
    assert standby["instance"] == {
        "id": "bridge-b",
        "role": "standby",
        "peers": standby["instance"]["peers"],
    }
    assert standby["instance"]["peers"][0]["role"] == "leader"
    assert standby["status"] == "ok" and standby["cluster"] == "up"

    async with Traffic([a, b]) as traffic:
        await traffic.wait(a, 3)
        await traffic.wait(b, 3)
        before = traffic.answered[b.id]
        traffic.dead.add(a.id)
        a.kill()
        took = await b.until(
            lambda h: (
                role(h) == "leader"
                and h["components"]["reconcile"]["state"] == "up"
                and detail(h, "reconcile")["runs"] >= 1
            )
        )
        await traffic.wait(b, before + 3)  # b kept routing calls throughout
    assert traffic.failed[b.id] == 0
    assert took["monitor"] != "standby" and took["merge_notice"] != "standby"
    await b.until(lambda h: peers(h) == [])  # a's row, no longer refreshed, ages out
    row = await pool.fetchrow("SELECT role FROM bridge_instances WHERE id = 'bridge-b'")
    assert row is not None and row["role"] == "leader"
    # /metrics labels each sample with the instance it came from
    async with aiohttp.ClientSession() as http, http.get(f"{b.url}/metrics") as resp:
        text = await resp.text()
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert samples and all('instance="bridge-b"' in line for line in samples)
    assert 'crm_bridge_cluster_leader{instance="bridge-b"} 1.0' in samples


async def test_the_same_call_ended_on_both_instances_is_one_row(
    tmp_path: Path, database_url: str, pool: asyncpg.Pool[Any], stack: AsyncExitStack
) -> None:
    tokens = await load_trace_crm(pool)
    agi_port = free_port()
    pbx = SimPbx(
        lab_config(technology="PJSIP", agi_port=agi_port, ami_users=(AmiUser("bridge", "s3cret"),)),
        clock=FastClock(speed=20),
    )
    ami = await stack.enter_async_context(AmiServer(pbx))
    linked = f'[ami]\nport = {ami.port}\nusername = "bridge"\nsecret = "s3cret"\n'
    # the PBX asks `a` for its routes; both follow its calls over AMI
    a = Bridge(tmp_path, "bridge-a", database_url, linked, agi_port=agi_port)
    b = Bridge(tmp_path, "bridge-b", database_url, linked)
    await leader_then_standby(stack, a, b)
    for bridge in (a, b):
        await bridge.until(lambda h: h["ami"] == "up")

    # The answering agent's page is held by b, which did not route the call: b pops it from
    # its own AMI link and tracker, without a hop through a.
    page = await websockets.connect(f"ws://127.0.0.1:{b.pops_port}/")
    stack.push_async_callback(page.close)
    await page.send(json.dumps({"type": "hello", "token": tokens["2001"]}))
    async with asyncio.timeout(30):
        assert json.loads(await page.recv())["type"] == "welcome"

    results = await asyncio.wait_for(pbx.run_scenario("vip-answered"), 60)
    assert results[0].variables["BRIDGE_QUEUE"] == "senior"
    async with asyncio.timeout(30):
        popped = [json.loads(await page.recv()) for _ in range(3)]
    assert [m["type"] for m in popped] == ["call.ringing", "call.answered", "call.ended"]
    assert popped[0]["customer"]["id"] == ALICE
    for bridge in (a, b):  # each wrote the end it saw
        await bridge.until(
            lambda h: (
                detail(h, "records")["written"] >= 1 and detail(h, "records")["spool_pending"] == 0
            )
        )
    rows = await pool.fetch("SELECT * FROM call_records")
    assert len(rows) == 1
    row = rows[0]
    assert row["customer_id"] == ALICE and row["queue"] == "senior"
    assert row["outcome"] == "answered" and [x["agent"] for x in row["agents"]] == ["2001"]
    call_id = row["call_id"]
    assert (
        await pool.fetchval("SELECT count(*) FROM service_history WHERE call_id = $1", call_id) == 1
    )
    assert await pool.fetchval("SELECT count(*) FROM call_outbox WHERE call_id = $1", call_id) == 1
    answered = await pool.fetch(
        "SELECT agent_id FROM call_participants WHERE call_id = $1 AND how = 'answered'", call_id
    )
    assert [r["agent_id"] for r in answered] == ["2001"]


async def test_a_token_rotated_on_one_instance_closes_the_page_held_by_the_other(
    tmp_path: Path, database_url: str, pool: asyncpg.Pool[Any], stack: AsyncExitStack
) -> None:
    tokens = await load_trace_crm(pool)
    admin = await create_agent(pool, "boss", "Boss", "admin", "9000")
    a = Bridge(tmp_path, "bridge-a", database_url)
    b = Bridge(tmp_path, "bridge-b", database_url)
    await leader_then_standby(stack, a, b)

    page = await websockets.connect(f"ws://127.0.0.1:{b.pops_port}/")
    stack.push_async_callback(page.close)
    await page.send(json.dumps({"type": "hello", "token": tokens["2001"]}))
    async with asyncio.timeout(30):
        assert json.loads(await page.recv())["type"] == "welcome"

    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{a.url}/api/agents/2001/token", headers={"Authorization": f"Bearer {admin}"}
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        fresh = (await resp.json())["token"]
    async with asyncio.timeout(30):
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await page.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003
    # the new token works on either instance
    again = await websockets.connect(f"ws://127.0.0.1:{b.pops_port}/")
    stack.push_async_callback(again.close)
    await again.send(json.dumps({"type": "hello", "token": fresh}))
    async with asyncio.timeout(30):
        assert json.loads(await again.recv())["type"] == "welcome"
