"""Opening asyncpg pools with driver errors mapped to the project's own."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from bridge.db.errors import map_db_errors


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def connect(url: str) -> asyncpg.Connection[Any]:
    """One connection with the project's JSON codecs."""
    with map_db_errors("cannot connect to the database"):
        conn: asyncpg.Connection[Any] = await asyncpg.connect(url, timeout=10)
    await _init_connection(conn)
    return conn


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool[Any]:
    with map_db_errors("cannot connect to the database"):
        pool = await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, init=_init_connection, timeout=10
        )
    assert pool is not None
    return pool
