"""The guard on how many PostgreSQL connections the suite holds (tests/pg_guard.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests import conftest
from tests.pg_guard import LIMIT, LIMIT_ENV, client_ports, limit

ROOT = Path(__file__).parents[1]


@pytest.fixture
async def three(database_url: str) -> AsyncIterator[list[asyncpg.Connection[Any]]]:
    conns = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        yield conns
    finally:
        for conn in conns:
            await conn.close()


async def test_the_watch_counts_the_runs_connections(
    three: list[asyncpg.Connection[Any]],
) -> None:
    watch = conftest._WATCH
    assert watch is not None and watch.error is None
    ports = {c._transport.get_extra_info("sockname")[1] for c in three}  # type: ignore[attr-defined]
    assert ports <= client_ports(5432)
    watch.sample_now()
    assert watch.test.database >= 3
    assert watch.test.held >= 3 and watch.session.held >= 3


def test_the_limit_can_be_lowered_never_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LIMIT_ENV, "2")
    assert limit() == 2
    monkeypatch.setenv(LIMIT_ENV, "500")
    assert limit() == LIMIT == 20
    monkeypatch.setenv(LIMIT_ENV, "many")
    assert limit() == LIMIT


def test_a_test_holding_more_than_the_limit_fails_and_so_does_the_run(tmp_path: Path) -> None:
    probe = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("--basetemp", str(tmp_path / "bt"), "tests/pg_guard_probe.py"),
        ],
        cwd=ROOT,
        env={**os.environ, LIMIT_ENV: "2"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = probe.stdout + probe.stderr
    assert probe.returncode == 1, out
    assert "1 passed, 1 error" in out
    assert "PostgreSQL connections at once" in out and "at most 2" in out
    assert "over the limit of 2" in out and "pg_guard_probe.py::test_holds_three" in out
