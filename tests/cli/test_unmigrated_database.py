from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest

from bridge.cli.main import main
from tests.conftest import ADMIN_URL, _with_database


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def test_a_database_without_schema_asks_for_db_migrate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"crmbridge_empty_{secrets.token_hex(4)}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        monkeypatch.setenv("CRM_BRIDGE_DATABASE_URL", _with_database(ADMIN_URL, name))
        # main() runs its own event loop: call it from a worker thread.
        status = await asyncio.to_thread(main, ["rules", "list"])
        err = capsys.readouterr().err
        assert status == 2
        assert "database.url" in err and "crm-bridge db migrate" in err
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
