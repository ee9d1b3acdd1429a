"""The one PostgreSQL error mapping, fed with errors a real server and driver raise."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import asyncpg
import pytest

from bridge.db.errors import DB_ERRORS, is_outage, map_db_errors
from bridge.db.pool import connect
from bridge.errors import CrmUnavailable, ValidationError


def _closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def _raised(conn: asyncpg.Connection[Any], sql: str) -> BaseException:
    try:
        await conn.execute(sql)
    except BaseException as exc:
        return exc
    raise AssertionError(f"{sql!r} did not fail")


async def test_a_server_error_becomes_unavailable_with_the_callers_words(database_url: str) -> None:
    conn = await connect(database_url)
    try:
        with pytest.raises(CrmUnavailable) as info, map_db_errors("cannot read the rules"):
            await conn.fetchval("SELECT 1 / 0")
    finally:
        await conn.close()
    assert str(info.value) == "cannot read the rules: division by zero"
    assert isinstance(info.value.__cause__, asyncpg.DivisionByZeroError)


async def test_a_closed_connection_becomes_unavailable(database_url: str) -> None:
    conn = await connect(database_url)
    await conn.close()
    with pytest.raises(CrmUnavailable) as info, map_db_errors("agent query failed"):
        await conn.fetchval("SELECT 1")
    assert isinstance(info.value.__cause__, asyncpg.InterfaceError)
    assert str(info.value).startswith("agent query failed: ")


async def test_a_refused_connect_becomes_unavailable() -> None:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/postgres"
    with pytest.raises(CrmUnavailable) as info:
        await connect(url)
    assert isinstance(info.value.__cause__, OSError)
    assert str(info.value).startswith("cannot connect to the database: ")


def test_a_timeout_is_a_database_failure_without_being_listed() -> None:
    """TimeoutError subclasses OSError: the modules that listed it apart caught nothing more."""
    assert TimeoutError not in DB_ERRORS
    with pytest.raises(CrmUnavailable) as info, map_db_errors("cannot list calls"):
        raise TimeoutError("timed out")
    assert str(info.value) == "cannot list calls: timed out"


def test_other_errors_pass_through_untouched() -> None:
    refused = ValidationError("name", "rule r1 already exists")
    with pytest.raises(ValidationError) as info, map_db_errors("cannot add routing rule"):
        raise refused
    assert info.value is refused
    with pytest.raises(KeyError), map_db_errors("cannot add routing rule"):
        raise KeyError("queue")
    with pytest.raises(asyncpg.exceptions.InternalClientError), map_db_errors("x"):
        raise asyncpg.exceptions.InternalClientError("protocol desynchronised")


def test_nothing_raised_means_nothing_mapped() -> None:
    with map_db_errors("cannot read"):
        value = 1
    assert value == 1


async def test_bad_data_is_not_an_outage(database_url: str) -> None:
    conn = await connect(database_url)
    try:
        for sql in (
            "SELECT 1 / 0",  # 22012
            "SELECT 'x'::int",  # 22P02
            "CREATE TEMP TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (1)",  # 23505
            "SELEC 1",  # 42601
            "SELECT * FROM no_such_table",  # 42P01
        ):
            exc = await _raised(conn, sql)
            assert isinstance(exc, asyncpg.PostgresError)
            assert not is_outage(exc), sql
    finally:
        await conn.close()


async def test_a_lost_server_is_an_outage(database_url: str) -> None:
    victim = await connect(database_url)
    killer = await connect(database_url)
    try:
        pid = victim.get_server_pid()
        query = asyncio.create_task(victim.execute("SELECT pg_sleep(60)"))
        async with asyncio.timeout(30):  # until the server runs it: then it is in flight
            while not await killer.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND query LIKE '%pg_sleep%'"
                " AND state = 'active'",
                pid,
            ):
                pass
        await killer.fetchval("SELECT pg_terminate_backend($1)", pid)
        lost = await asyncio.gather(query, return_exceptions=True)
        assert isinstance(lost[0], asyncpg.PostgresConnectionError) and is_outage(lost[0])
        closed = await _raised(victim, "SELECT 1")  # the driver knows it is gone now
        assert isinstance(closed, asyncpg.InterfaceError) and is_outage(closed)
        cancelled = await _raised(killer, "SET statement_timeout = 1; SELECT pg_sleep(1)")
        assert isinstance(cancelled, asyncpg.QueryCanceledError)  # 57014: try again later
        assert is_outage(cancelled)
    finally:
        victim.terminate()
        await killer.close()
    assert is_outage(ConnectionRefusedError()) and is_outage(TimeoutError())
    assert not is_outage(ValueError("not a database error"))
