"""Shared fixtures: a real PostgreSQL database per test run, and the recorded traces.

The run creates its own database on the server named by `CRM_BRIDGE_TEST_PG`
(default postgresql://postgres@127.0.0.1:5432/postgres), migrates it once, and drops it at
the end. Each test that takes `pool` starts from empty tables. The run may hold at most
`pg_guard.LIMIT` (20) connections to that server at once: a `ConnectionWatch`
(tests/pg_guard.py) samples them from session start, a test during which more were open
fails, so does the session, and the peak is printed at the end.
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
from tests.pg_guard import ConnectionWatch, limit

TRACES = Path(__file__).parent / "fixtures" / "asterisk-traces"
SCENARIOS = sorted(
    p.name for p in TRACES.iterdir() if p.is_dir() and (p / "scenario.json").exists()
)
DEFAULT_REGION = PbxConfig().default_region  # "US"
ADMIN_URL = os.environ.get("CRM_BRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


_WATCH: ConnectionWatch | None = None


def pytest_sessionstart(session: pytest.Session) -> None:
    """Watch, from the start, how many PostgreSQL connections the run holds."""
    global _WATCH
    _WATCH = ConnectionWatch(ADMIN_URL)
    _WATCH.start()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    if _WATCH is not None:
        _WATCH.begin_test(item.nodeid)
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        return (yield)
    finally:
        if _WATCH is not None:
            _WATCH.sample_now()  # the test's fixtures (pools, listeners, bridges) still open


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    watch = _WATCH  # its `test` peak covers this item, from setup to teardown
    if report.when == "teardown" and report.passed and watch and watch.test.held > limit():
        report.outcome = "failed"
        report.longrepr = (
            f"this test held {watch.test.held} PostgreSQL connections at once"
            f" (test database {watch.test.database}, this run {watch.test.run});"
            f" the suite may hold at most {limit()}: see tests/pg_guard.py"
        )
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run that went over the limit fails, even if every test's own check passed."""
    if _WATCH is None:
        return
    _WATCH.stop()
    if _WATCH.session.held > limit() and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    watch = _WATCH
    if watch is None:
        return
    peak = watch.session
    verdict = "over the limit" if peak.held > limit() else "within the limit"
    terminalreporter.write_line(
        f"PostgreSQL connections held at once: peak {peak.held} {verdict} of {limit()}"
        f" (test database {peak.database}, this run on the server {peak.run})"
        + (f", during {peak.during}" if peak.during else "")
        + (f"; {watch.error}" if watch.error else "")
    )


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
    if _WATCH is not None:
        _WATCH.database = name
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
