"""Opening asyncpg pools with driver errors mapped to the project's own.

A released connection is not reset (asyncpg's reset is one more round trip per query,
and pooled connections hold no session state) unless its user said it holds some: a LISTEN
or a session advisory lock, marked with `holds_session_state(conn)` when taken. asyncpg
itself still rolls back an open transaction and drops client-side listeners on release.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from bridge.db.errors import map_db_errors


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


_STATEFUL: set[int] = set()  # server pids of pooled connections to reset on release


def holds_session_state(conn: Any) -> None:
    """Mark a pooled connection for a full reset (UNLISTEN *, advisory unlock, RESET ALL)
    when it goes back to the pool."""
    _STATEFUL.add(conn.get_server_pid())


async def _reset(conn: asyncpg.Connection[Any]) -> None:
    pid = conn.get_server_pid()
    if pid in _STATEFUL:
        _STATEFUL.discard(pid)
        await conn.reset()


async def connect(url: str) -> asyncpg.Connection[Any]:
    """One connection with the project's JSON codecs."""
    with map_db_errors("cannot connect to the database"):
        conn: asyncpg.Connection[Any] = await asyncpg.connect(url, timeout=10)
    await _init_connection(conn)
    return conn


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool[Any]:
    with map_db_errors("cannot connect to the database"):
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            reset=_reset,
            timeout=10,
        )
    assert pool is not None
    return pool
