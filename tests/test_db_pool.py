"""Pooled connections: no reset round trip on release, except for a connection marked as
holding session state (a LISTEN or a session advisory lock), which is reset in full."""

from __future__ import annotations

from bridge.db.pool import create_pool, holds_session_state

LOCK = 7_420_999


async def test_an_unmarked_connection_is_returned_as_it_is(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("SET application_name = 'kept'")  # session state, on purpose
            pid = conn.get_server_pid()
        async with pool.acquire() as conn:
            assert conn.get_server_pid() == pid  # the same connection ...
            assert await conn.fetchval("SHOW application_name") == "kept"  # ... not reset
    finally:
        await pool.close()


async def test_a_marked_connection_gives_up_its_lock_and_listen_on_release(
    database_url: str,
) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            holds_session_state(conn)
            assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK)
            await conn.execute("LISTEN route_test_channel")
            pid = conn.get_server_pid()
        async with pool.acquire() as conn:
            assert conn.get_server_pid() == pid
            held = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1"
                " AND pid = pg_backend_pid()",
                LOCK,
            )
            assert held == 0
            assert await conn.fetchval("SELECT count(*) FROM pg_listening_channels()") == 0
    finally:
        await pool.close()
