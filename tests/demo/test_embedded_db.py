"""The embedded PostgreSQL: starts from nothing, reuses its data, stops what it started."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg
import pytest

from bridge.config import build_config
from bridge.db.embedded import EmbeddedPostgres, database_url, read_postmaster

pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


async def test_starts_from_an_empty_folder_keeps_data_and_stops(tmp_path: Path) -> None:
    root = tmp_path / ".crm-bridge"
    first = EmbeddedPostgres(root)
    url = await first.start()
    try:
        info = read_postmaster(root / "pgdata")
        assert info is not None
        assert "host=" in url and "localhost" not in url  # Unix socket only, no TCP
        if os.geteuid() == 0:
            assert _uid_of(info.pid) != 0  # PostgreSQL never runs as root
        conn = await asyncpg.connect(url)
        await conn.execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
        await conn.close()
    finally:
        await first.stop()
    assert not _alive(info.pid)
    assert read_postmaster(root / "pgdata") is None
    version = (root / "pgdata" / "PG_VERSION").stat().st_mtime_ns

    second = EmbeddedPostgres(root)
    url = await second.start()
    try:
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("SELECT v FROM kept") == "still here"
        await conn.close()
    finally:
        await second.stop()
    assert (root / "pgdata" / "PG_VERSION").stat().st_mtime_ns == version  # no second initdb
    assert read_postmaster(root / "pgdata") is None


async def test_a_second_user_joins_a_running_server_without_stopping_it(tmp_path: Path) -> None:
    root = tmp_path / ".crm-bridge"
    owner = EmbeddedPostgres(root)
    await owner.start()
    try:
        guest = EmbeddedPostgres(root)
        url = await guest.start()
        assert url == owner.url
        await guest.stop()
        info = read_postmaster(root / "pgdata")
        assert info is not None  # still running for its owner
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("SELECT 1") == 1
        await conn.close()
    finally:
        await owner.stop()
    assert read_postmaster(root / "pgdata") is None


async def test_a_server_left_by_a_dead_process_is_adopted_and_stopped(tmp_path: Path) -> None:
    root = tmp_path / ".crm-bridge"
    crashed = EmbeddedPostgres(root)
    await crashed.start()
    pid = read_postmaster(root / "pgdata").pid  # type: ignore[union-attr]
    (root / "pg.owner").write_text("999999999\n")  # its owner died without stopping it
    heir = EmbeddedPostgres(root)
    await heir.start()
    assert heir.owned
    await heir.stop()
    assert not _alive(pid)


async def test_a_configured_url_is_used_as_is() -> None:
    config = build_config({"database": {"url": "postgresql://x@db.example/crm"}}, {}, runtime=False)
    async with database_url(config) as url:
        assert url == "postgresql://x@db.example/crm"


async def test_database_url_uses_the_crm_bridge_folder_of_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = build_config({}, {}, runtime=False)
    async with database_url(config) as url:
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("SELECT current_setting('data_directory')") == str(
            tmp_path / ".crm-bridge" / "pgdata"
        )
        await conn.close()
    assert read_postmaster(tmp_path / ".crm-bridge" / "pgdata") is None


async def test_a_folder_with_spaces_and_quotes_works(tmp_path: Path) -> None:
    root = tmp_path / "my demo's folder" / ".crm-bridge"
    root.parent.mkdir()
    server = EmbeddedPostgres(root)
    url = await server.start()
    try:
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("SELECT 1") == 1
        await conn.close()
    finally:
        await server.stop()
    assert read_postmaster(root / "pgdata") is None
