"""`crm-bridge agents token ID` and `crm-bridge agents disable ID` (CONTRACT, command line)."""

from __future__ import annotations

import asyncio

import pytest

from bridge.cli.main import main
from bridge.crm.agents import Agent, authenticate
from bridge.db.pool import create_pool
from tests.cli.test_crm_commands import _fetch, cli_db  # noqa: F401  (the fixture)


def _authenticates(url: str, token: str) -> Agent | None:
    async def go() -> Agent | None:
        pool = await create_pool(url, max_size=1)
        try:
            return await authenticate(pool, token)
        finally:
            await pool.close()

    return asyncio.run(go())


def _add(capsys: pytest.CaptureFixture[str], aid: str) -> str:
    assert main(["agents", "add", aid, "--name", "Ann"]) == 0
    return capsys.readouterr().out.split()[-1]


def test_token_reissues_once_and_the_old_one_stops_working(
    cli_db: str,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    old = _add(capsys, "1001")
    other = _add(capsys, "1002")
    assert main(["agents", "token", "1001"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    word, aid, new = out.split()
    assert (word, aid) == ("agent", "1001") and new != old
    assert _authenticates(cli_db, old) is None
    agent = _authenticates(cli_db, new)
    assert agent is not None and agent.id == "1001"
    assert _authenticates(cli_db, other) is not None, "other agents keep their tokens"
    assert new not in str(_fetch(cli_db, "SELECT token_hash, before, after FROM agents, audit_log"))
    assert _fetch(cli_db, "SELECT actor, action, target_id FROM audit_log") == [
        ("cli", "agent.token", "1001")
    ]


def test_disable_stops_the_token_and_keeps_the_row(
    cli_db: str,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = _add(capsys, "1001")
    assert main(["agents", "disable", "1001"]) == 0
    assert capsys.readouterr().out == "agent 1001 disabled\n"
    assert _authenticates(cli_db, token) is None
    assert _fetch(cli_db, "SELECT id, active FROM agents") == [("1001", False)]
    [(action, before, after)] = _fetch(cli_db, "SELECT action, before, after FROM audit_log")
    assert action == "agent.disable"
    assert before["active"] is True and after["active"] is False  # type: ignore[index]
    assert main(["agents", "list"]) == 0
    assert "(inactive)" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["token", "disable"])
@pytest.mark.parametrize("aid", ["nobody", "bad id\r\n", "x" * 500, "a'; DROP TABLE agents;--"])
def test_a_missing_agent_exits_2_with_one_line(
    cli_db: str,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    command: str,
    aid: str,
) -> None:
    _add(capsys, "1001")
    assert main(["agents", command, aid]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("crm-bridge: no agent ") and captured.err.count("\n") == 1
    assert _fetch(cli_db, "SELECT count(*) FROM audit_log") == [(0,)]
    assert _fetch(cli_db, "SELECT active FROM agents") == [(True,)]
