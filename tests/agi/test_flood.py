"""A thousand idle FastAGI sockets do not keep real calls from being routed."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import pytest

from tests.agi.client import header, play_asterisk
from tests.agi.conftest import agi_config, start_stack, stop_stack
from tests.crm.fixture_crm import load_trace_crm
from tests.flood import close_sockets, flood_size, open_sockets, wait_until

ALICE = {"BRIDGE_QUEUE": "senior", "BRIDGE_CUSTOMER_NAME": "Alice Chen", "BRIDGE_DEGRADED": "0"}


async def test_a_thousand_idle_sockets_hold_no_session_and_twenty_real_calls_are_routed(
    pool: asyncpg.Pool[Any], caplog: pytest.LogCaptureFixture
) -> None:
    idle_count = flood_size(1000, server_fds=300)
    max_pending = 256
    assert idle_count > max_pending
    # max_sessions = 20: under the old server the idle sockets alone would have filled it.
    # The idle sockets stay idle for the whole test (first byte deadline 60 s).
    config = agi_config(max_sessions=20, max_pending=max_pending, first_byte_timeout_s=60)
    await load_trace_crm(pool)
    stack = await start_stack(pool, config)
    guard = stack.server.guard
    idle: list[Any] = []
    try:
        with caplog.at_level(logging.INFO):
            idle = await open_sockets(stack.port, idle_count)
            await wait_until(lambda: guard.seen == idle_count)
            assert guard.pending == max_pending
            assert guard.refused == {"evicted": idle_count - max_pending}
            assert stack.server.active == 0

            results = await asyncio.gather(
                *(
                    play_asterisk(stack.port, header(uniqueid=f"9.{i}"), linkedid=f"8.{i}")
                    for i in range(20)
                )
            )
            for result in results:
                assert {k: result.variables.get(k) for k in ALICE} == ALICE
            # Each real call took the place of the oldest idle socket, no more.
            assert guard.refused == {"evicted": idle_count - max_pending + 20}
            assert guard.pending == max_pending - 20
            assert stack.server.rejected == 0
            assert await stack.service.drain(10)
            rows = await pool.fetchval("SELECT count(*) FROM route_decisions")
            assert rows == 20
    finally:
        close_sockets(idle)
        await stop_stack(stack)
    # One line for the episode (the summary comes at stop), not one per dropped socket.
    guard_lines = [r for r in caplog.records if r.name.startswith("bridge.netguard")]
    assert 1 <= len(guard_lines) <= 3
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) <= 5
