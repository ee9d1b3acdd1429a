"""The lease in process, on the real database: one holder at a time, a standby takes over
when the holder's session ends, a holder that loses its connection stops its jobs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from bridge.cluster import Instance, LeaderOnly, Lease
from bridge.cluster.metrics import instance_labelled
from bridge.component import Health
from bridge.db.pool import connect


class Job:
    """A once-only job that notes its starts and stops."""

    name = "job"

    def __init__(self) -> None:
        self.log: list[str] = []

    async def start(self) -> None:
        self.log.append("start")

    async def stop(self) -> None:
        self.log.append("stop")

    def health(self) -> Health:
        return Health("up", required=False)


class Node:
    """One instance: its lease and a job that follows it."""

    def __init__(self, database_url: str, name: str, takeover_s: float = 0.6) -> None:
        self.lease = Lease(
            lambda: connect(database_url), Instance(name, "host", 1), takeover_s=takeover_s
        )
        self.job = Job()
        self.gated = LeaderOnly(self.job, self.lease)

    async def start(self) -> None:
        await self.lease.start()
        await self.gated.start()

    async def stop(self) -> None:
        await self.gated.stop()
        await self.lease.stop()

    async def until(self, role: str) -> None:
        async with asyncio.timeout(20):
            while self.lease.role != role:
                await self.lease.wait_beats(self.lease._beats + 1)

    def die(self) -> None:
        """As SIGKILL: no goodbye, the socket just closes (its backend exits)."""
        assert self.lease._task is not None and self.lease._conn is not None
        self.lease._task.cancel()
        self.lease._conn.terminate()


@pytest.fixture
async def nodes(database_url: str, pool: asyncpg.Pool[Any]) -> AsyncIterator[list[Node]]:
    made = [Node(database_url, "a"), Node(database_url, "b")]
    async with AsyncExitStack() as stack:
        for node in made:
            stack.push_async_callback(node.stop)
        yield made


async def test_one_instance_holds_the_lease_and_sees_the_other_as_peer(nodes: list[Node]) -> None:
    a, b = nodes
    await a.start()
    assert a.lease.role == "leader" and a.job.log == ["start"]  # a lone instance, at once
    await b.start()
    await b.lease.wait_beats(2)
    await a.lease.wait_beats(a.lease._beats + 1)
    assert b.lease.role == "standby" and b.job.log == []
    assert b.gated.health().state == "standby"
    assert [p["id"] for p in b.lease.describe()["peers"]] == ["a"]
    assert b.lease.describe()["peers"][0]["role"] == "leader"
    assert [p["id"] for p in a.lease.describe()["peers"]] == ["b"]


async def test_healthz_peers_name_no_host_or_pid(nodes: list[Node]) -> None:
    """`/healthz` answers anyone who reaches the port (load balancers): a peer is its id,
    role and last beat, not the machine's host name and process id."""
    a, b = nodes
    await a.start()
    await b.start()
    await b.lease.wait_beats(2)
    (peer,) = b.lease.describe()["peers"]
    assert set(peer) == {"id", "role", "seen_at"} and peer["id"] == "a"
    assert isinstance(peer["seen_at"], str)


async def test_a_standby_takes_over_when_the_holder_dies(
    nodes: list[Node], pool: asyncpg.Pool[Any]
) -> None:
    a, b = nodes
    await a.start()
    await b.start()
    a.die()
    await b.until("leader")
    assert b.job.log == ["start"]
    await b.lease.wait_beats(b.lease._beats + 1)
    row = await pool.fetchrow("SELECT role FROM bridge_instances WHERE id = 'b'")
    assert row is not None and row["role"] == "leader"


async def test_a_holder_whose_session_is_cut_stops_its_jobs_then_takes_the_lease_again(
    nodes: list[Node], pool: asyncpg.Pool[Any]
) -> None:
    a, _ = nodes
    await a.start()
    cut = await pool.fetchval(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'crm-bridge lease a'"
    )
    assert cut
    async with asyncio.timeout(20):
        while a.job.log != ["start", "stop", "start"]:
            await a.lease.wait_beats(a.lease._beats + 1)
    assert a.lease.role == "leader"


async def test_a_clean_stop_hands_over_and_leaves_the_peer_list(
    nodes: list[Node], pool: asyncpg.Pool[Any]
) -> None:
    a, b = nodes
    await a.start()
    await b.start()
    await a.stop()
    assert a.job.log == ["start", "stop"]
    assert await pool.fetchval("SELECT count(*) FROM bridge_instances WHERE id = 'a'") == 0
    await b.until("leader")
    assert b.job.log == ["start"]


def test_every_exposed_sample_carries_the_instance_label() -> None:
    source = CollectorRegistry()
    calls = Counter("demo_calls", "calls", ["queue"], registry=source)
    calls.labels("support").inc()
    text = generate_latest(instance_labelled(source, "bridge-2")).decode()
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert samples and all('instance="bridge-2"' in line for line in samples)
    assert 'demo_calls_total{instance="bridge-2",queue="support"} 1.0' in samples
