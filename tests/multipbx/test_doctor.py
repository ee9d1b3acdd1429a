"""`crm-bridge doctor` with several PBXs: the AMI and ARI checks run once per PBX, and the
active agents on no configured PBX (they match no device) are named."""

from __future__ import annotations

from typing import Any

import asyncpg

from bridge.config import Config, build_config
from bridge.crm.agents import create_agent, set_active
from bridge.crm.off_pbx import agents_off_pbx, off_pbx_text
from bridge.doctor.checks import run_checks
from tests.test_end_to_end import free_port


async def test_each_pbx_gets_its_own_ami_and_ari_lines() -> None:
    entries = [
        {"name": name, "ami": {"port": free_port(), "username": "u", "secret": "s"}}
        for name in ("east", "west")
    ]
    checks = {c.name: c for c in await run_checks(build_config({"pbx": entries}, {}))}
    assert checks["ami east"].status == checks["ami west"].status == "fail"
    assert str(entries[1]["ami"]["port"]) in checks["ami west"].detail  # type: ignore[index]
    assert checks["ari east"].status == checks["ari west"].status == "ok"  # disabled
    assert "ami" not in checks and "ari" not in checks


def with_database(database_url: str, names: tuple[str, ...] = ("east", "west")) -> Config:
    entries = [{"name": name, "ami": {"username": "u", "secret": "s"}} for name in names]
    return build_config({"database": {"url": database_url}, "pbx": entries}, {})


async def test_agents_on_no_configured_pbx_are_named(
    database_url: str, pool: asyncpg.Pool[Any]
) -> None:
    await create_agent(pool, "legacy", "Before the entries", "agent", "1001")  # pbx ''
    await create_agent(pool, "moved", "On a removed entry", "agent", "1002", "north")
    await create_agent(pool, "placed", "On east", "agent", "1001", "east")
    await create_agent(pool, "gone", "Disabled", "agent", "1003")
    await set_active(pool, "gone", False)
    checks = {c.name: c for c in await run_checks(with_database(database_url))}
    check = checks["agents pbx"]
    assert check.status == "warn"
    assert "2 active agent(s)" in check.detail and "legacy, moved;" in check.detail
    assert "placed" not in check.detail and "gone" not in check.detail
    await pool.execute("UPDATE agents SET pbx = 'west' WHERE id IN ('legacy', 'moved')")
    checks = {c.name: c for c in await run_checks(with_database(database_url))}
    assert checks["agents pbx"].status == "ok"


async def test_a_single_pbx_has_no_agents_pbx_line(
    database_url: str, pool: asyncpg.Pool[Any]
) -> None:
    await create_agent(pool, "legacy", "Legacy", "agent", "1001")
    ami = {"username": "u", "secret": "s"}
    config = build_config({"database": {"url": database_url}, "ami": ami}, {})
    assert "agents pbx" not in {c.name for c in await run_checks(config)}


async def test_a_long_list_is_cut_short(pool: asyncpg.Pool[Any], database_url: str) -> None:
    for n in range(25):
        await create_agent(pool, f"a{n:02d}", "Legacy", "agent", f"1{n:03d}")
    ids = await agents_off_pbx(pool, with_database(database_url))
    assert len(ids) == 25
    text = off_pbx_text(ids)
    assert "a19 and 5 more" in text and "a20" not in text
