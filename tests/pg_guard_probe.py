"""Run only by tests/test_pg_guard.py, in a pytest of its own with a lowered limit: a test
holding three connections to the test database while its body runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest


@pytest.fixture
async def three(database_url: str) -> AsyncIterator[list[asyncpg.Connection[Any]]]:
    conns = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        yield conns
    finally:
        for conn in conns:
            await conn.close()


async def test_holds_three_connections(three: list[asyncpg.Connection[Any]]) -> None:
    assert [await c.fetchval("SELECT 1") for c in three] == [1, 1, 1]
