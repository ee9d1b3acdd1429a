"""Apply `sql/*.sql` in file-name order, once each, recorded in `schema_migrations`."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

import asyncpg

from bridge.db.pool import connect

# Any constant key: one migrating process at a time, even when several start together.
_MIGRATION_LOCK = 7_420_001


def _sql_folder() -> Traversable:
    """`sql/` of a source checkout (editable install), else the copy packaged as bridge.sql."""
    source = Path(__file__).resolve().parents[2] / "sql"
    if source.is_dir():
        return source
    return resources.files("bridge.sql")


def migration_files() -> list[tuple[str, str]]:
    """(name, sql) of every migration shipped with the package, in order."""
    folder = _sql_folder()
    entries = [e for e in folder.iterdir() if e.name.endswith(".sql")]
    return [(e.name, e.read_text(encoding="utf-8")) for e in sorted(entries, key=lambda e: e.name)]


async def apply_migrations(conn: asyncpg.Connection[Any]) -> list[str]:
    """Apply what is missing; return the names applied now."""
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        applied: list[str] = []
        for name, sql in migration_files():
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            applied.append(name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)


async def migrate(url: str) -> list[str]:
    conn = await connect(url)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()
