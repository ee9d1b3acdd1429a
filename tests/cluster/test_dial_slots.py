"""`[dial] per_minute` is one minute per agent across every bridge instance on the database
(issue 18): dials placed through two instances' Dialers count together."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from bridge.crm.agents import Agent
from bridge.dial.service import Dialer, DialRateLimited
from bridge.dial.slots import take_slot
from tests.dial.test_dial_http import CONFIG, FakePbx  # [dial] per_minute = 3

AGENT = Agent("1001", "Agent 1001", "agent", "1001")


async def test_dials_through_two_instances_share_the_agents_minute(
    pool: asyncpg.Pool[Any],
) -> None:
    clock = [1_764_000_000.0]
    pbx = FakePbx()
    one, two = (Dialer(pool, CONFIG, pbx.action, clock=lambda: clock[0]) for _ in range(2))
    await one.dial(AGENT, "+15551230002", actor="1001")
    await two.dial(AGENT, "+15551230002", actor="1001")
    clock[0] += 20
    await one.dial(AGENT, "+15551230002", actor="1001")
    with pytest.raises(DialRateLimited) as limited:
        await two.dial(AGENT, "+15551230002", actor="1001")
    assert limited.value.retry_after_s == 40 and len(pbx.sent) == 3
    clock[0] += 40  # the first dial's slot frees
    await two.dial(AGENT, "+15551230002", actor="1001")
    assert len(pbx.sent) == 4


async def test_concurrent_takes_never_exceed_the_limit(pool: asyncpg.Pool[Any]) -> None:
    taken = await asyncio.gather(
        *(take_slot(pool, "1001", now=1000.0, per_minute=3) for _ in range(8))
    )
    assert taken.count(None) == 3 and all(t == 60 for t in taken if t is not None)
    assert await pool.fetchval("SELECT count(*) FROM dial_slots") == 3
