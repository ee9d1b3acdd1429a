"""PgListener: start with the database gone, dispatch, and subscriber isolation."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from bridge.crm.listener import PgListener
from bridge.db.pool import create_pool


async def test_start_returns_when_the_database_is_unreachable(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    await pool.close()
    resets: list[int] = []
    listener = PgListener(pool, backoff_max_s=0.05)
    listener.subscribe("crm_customer_changed", lambda _p: None, lambda: resets.append(1))
    async with asyncio.timeout(10):
        await listener.start()
    assert not listener.listening
    assert listener.health().state == "down" and "last_error" in listener.health().detail
    await listener.stop()
    assert resets  # a failed attempt counts as "may have missed something"


async def test_notifications_reach_each_subscriber_and_a_bad_one_only_resets_itself(
    pool: asyncpg.Pool[Any],
) -> None:
    listener = PgListener(pool)
    got: list[str] = []
    bad_resets: list[int] = []

    def boom(_payload: str) -> None:
        raise RuntimeError("subscriber bug")

    listener.subscribe("chan_a", got.append, lambda: None)
    listener.subscribe("chan_a", boom, lambda: bad_resets.append(1))
    listener.subscribe("chan_b", lambda p: got.append("b:" + p), lambda: None)
    await listener.start()
    try:
        with pytest.raises(RuntimeError, match="before start"):
            listener.subscribe("late", got.append, lambda: None)
        resets_at_start = len(bad_resets)
        await pool.execute("SELECT pg_notify('chan_a', 'x'), pg_notify('chan_b', 'y')")
        async with asyncio.timeout(5):
            while len(got) < 2:  # noqa: ASYNC110 - bounded poll for a NOTIFY
                await asyncio.sleep(0.01)
        assert got == ["x", "b:y"]
        assert len(bad_resets) == resets_at_start + 1
        assert listener.listening
    finally:
        await listener.stop()
    assert not listener.listening
