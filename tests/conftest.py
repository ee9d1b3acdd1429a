"""Shared fixtures: a real PostgreSQL database per test run, and the recorded traces.

The run creates its own database on the server named by `CRM_BRIDGE_TEST_PG`
(default postgresql://postgres@127.0.0.1:5432/postgres), migrates it once, and drops it at
the end. Each test that takes `pool` starts from empty tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bridge.config import PbxConfig
from bridge.crm.listener import PgListener
from bridge.crm.roster import AgentRoster
from bridge.db.migrate import apply_migrations
from bridge.db.pool import connect, create_pool
from bridge.records.spool import Spool
from bridge.records.writer import RecordWriter

TRACES = Path(__file__).parent / "fixtures" / "asterisk-traces"
SCENARIOS = sorted(
    p.name for p in TRACES.iterdir() if p.is_dir() and (p / "scenario.json").exists()
)
DEFAULT_REGION = PbxConfig().default_region  # "US"
ADMIN_URL = os.environ.get("CRM_BRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session", autouse=True)
def spool_outside_the_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Call-record spools default to ./.crm-bridge/spool; keep tests out of the checkout."""
    key = "CRM_BRIDGE_RECORDS_SPOOL_DIR"
    before = os.environ.get(key)
    os.environ[key] = str(tmp_path_factory.mktemp("spool"))
    yield
    if before is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = before


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    name = f"crmbridge_test_{os.getpid()}_{secrets.token_hex(4)}"

    async def create() -> None:
        admin = await asyncpg.connect(ADMIN_URL)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await connect(_with_database(ADMIN_URL, name))
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()

    async def drop() -> None:
        admin = await asyncpg.connect(ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(create())
    try:
        yield _with_database(ADMIN_URL, name)
    finally:
        asyncio.run(drop())


async def truncate_all(conn: asyncpg.Connection[Any]) -> None:
    tables = [
        r["tablename"]
        for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'schema_migrations'"
        )
    ]
    if tables:
        await conn.execute(
            "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
        )


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool[Any]]:
    """A pool on the test database, every table emptied first."""
    p = await create_pool(database_url, min_size=1, max_size=10)
    async with p.acquire() as conn:
        await truncate_all(conn)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
async def writer(pool: asyncpg.Pool[Any], tmp_path: Path) -> AsyncIterator[RecordWriter]:
    """A running call-record writer on `pool`, spooling under `tmp_path`, in the default
    `[pbx] default_region`."""
    w = RecordWriter(pool, Spool(tmp_path / "spool"), region=DEFAULT_REGION)
    await w.start()
    try:
        yield w
    finally:
        await w.stop()


@pytest.fixture
def traces() -> Path:
    return TRACES


@contextlib.asynccontextmanager
async def running_roster(pool: asyncpg.Pool[Any]) -> AsyncIterator[AgentRoster]:
    """An agent roster on its own LISTEN connection (one more connection while it runs)."""
    listener = PgListener(pool, name="test-roster-listener")
    roster = AgentRoster(pool, listener)
    await listener.start()
    await roster.start()
    try:
        yield roster
    finally:
        await roster.stop()
        await listener.stop()


@pytest.fixture
async def roster(pool: asyncpg.Pool[Any]) -> AsyncIterator[AgentRoster]:
    async with running_roster(pool) as running:
        yield running
