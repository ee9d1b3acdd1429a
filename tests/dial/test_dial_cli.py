"""`crm-bridge dial AGENT NUMBER` against the simulator's AMI: a placed call prints its id,
a refused number or an unknown agent is exit 2 with the reason, and nothing is originated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bridge.cli.main import main
from bridge.sim import AmiServer, AmiUser, FastClock, SimConfig, SimPbx
from tests.crm.fixture_crm import load_trace_crm


@pytest.fixture
async def ami() -> AsyncIterator[AmiServer]:
    pbx = SimPbx(SimConfig(ami_users=(AmiUser("bridge", "s3cret"),)), clock=FastClock(speed=50))
    async with AmiServer(pbx) as server:
        yield server
        await pbx.stop()


def write_config(tmp_path: Path, database_url: str, port: int) -> str:
    path = tmp_path / "crm-bridge.toml"
    path.write_text(
        f'[database]\nurl = "{database_url}"\n'
        f'[ami]\nport = {port}\nusername = "bridge"\nsecret = "s3cret"\n'
    )
    return str(path)


async def test_the_cli_dials_for_an_agent_and_refuses_bad_input(
    database_url: str,
    pool: asyncpg.Pool[Any],
    ami: AmiServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await load_trace_crm(pool)
    conf = write_config(tmp_path, database_url, ami.port)
    bad = await asyncio.to_thread(
        main, ["--config", conf, "dial", "1001", "1234,Application,System"]
    )
    assert bad == 2 and "only digits" in capsys.readouterr().err
    nobody = await asyncio.to_thread(main, ["--config", conf, "dial", "nobody", "+15551230002"])
    assert nobody == 2 and "no agent" in capsys.readouterr().err
    assert not [a for a in ami.actions_seen if a.get("action") == "Originate"]

    assert await asyncio.to_thread(main, ["--config", conf, "dial", "1001", "+15551230002"]) == 0
    call_id = capsys.readouterr().out.strip()
    [originate] = [a for a in ami.actions_seen if a.get("action") == "Originate"]
    assert originate["channelid"] == call_id and originate["exten"] == "15551230002"
    assert originate["channel"] == "PJSIP/1001"
    audited = await pool.fetch("SELECT actor, after FROM audit_log WHERE action = 'call.dial'")
    assert [(r["actor"], r["after"]["result"]) for r in audited] == [
        ("cli", "refused"),
        ("cli", "queued"),
    ]
