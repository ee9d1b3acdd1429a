"""The command line with several PBXs: agents are added on a PBX, `sync run` reconciles
each PBX from its own CDR store under its own namespace."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import asyncpg

from tests.records.helpers import ended_events
from tests.sync.test_cdr_store import SCENARIOS, master_csv
from tests.sync.test_sync import _cli

CONFIG = """
[ami]
username = "bridge"
secret = "s"

[[pbx]]
name = "east"
cdr_source = "csv:{dir}/east.csv"

[[pbx]]
name = "west"
cdr_source = "csv:{dir}/west.csv"
"""


def environment(database_url: str, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "bridge.toml").write_text(CONFIG.format(dir=tmp_path))
    return {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")} | {
        "CRM_BRIDGE_DATABASE_URL": database_url,
        "CRM_BRIDGE_CONFIG": str(tmp_path / "bridge.toml"),
    }


async def test_agents_are_added_on_the_named_or_the_first_pbx(
    pool: asyncpg.Pool[Any], database_url: str, tmp_path: Path
) -> None:
    env = environment(database_url, tmp_path)
    assert (await _cli("agents", "add", "e1", "--name", "E", "--device", "1001", env=env))[0] == 0
    args = ("agents", "add", "w1", "--name", "W", "--device", "1001", "--pbx", "west")
    assert (await _cli(*args, env=env))[0] == 0
    code, _, err = await _cli("agents", "add", "x1", "--name", "X", "--pbx", "West!", env=env)
    assert code == 2 and "pbx" in err
    rows = await pool.fetch("SELECT id, pbx, pbx_device FROM agents ORDER BY id")
    assert [tuple(r) for r in rows] == [("e1", "east", "east:1001"), ("w1", "west", "west:1001")]


async def test_sync_run_rebuilds_each_pbxs_calls_in_its_namespace(
    pool: asyncpg.Pool[Any], database_url: str, tmp_path: Path
) -> None:
    env = environment(database_url, tmp_path)
    for pbx in ("east", "west"):
        (tmp_path / f"{pbx}.csv").write_bytes(master_csv())  # colliding Uniqueids
    code, out, err = await _cli("sync", "run", "--since", "3650d", env=env)
    ids = {e.call_id for s in SCENARIOS for e in ended_events(s)}
    assert code == 0, err
    assert f"checked {2 * len(ids)}, backfilled {2 * len(ids)}" in out
    rows = await pool.fetch("SELECT call_id FROM call_records")
    assert {r["call_id"] for r in rows} == {f"{p}:{i}" for p in ("east", "west") for i in ids}


async def test_devices_test_maps_a_channel_on_the_named_pbx(
    pool: asyncpg.Pool[Any], database_url: str, tmp_path: Path
) -> None:
    env = environment(database_url, tmp_path)
    for aid, ext, pbx in (("e1", "1001", "east"), ("w2", "1002", "west")):
        args = ("agents", "add", aid, "--name", aid, "--device", ext, "--pbx", pbx)
        assert (await _cli(*args, env=env))[0] == 0
    channels = ("PJSIP/1001-0000000a", "PJSIP/1002-0000000b")
    code, out, err = await _cli("devices", "test", *channels, env=env)
    assert code == 0, err
    assert out.splitlines() == [
        "PJSIP/1001-0000000a -> extension 1001 -> agent e1",
        "PJSIP/1002-0000000b -> extension 1002 -> no agent has this device: not an agent",
    ]
    code, out, err = await _cli("devices", "test", *channels, "--pbx", "west", env=env)
    assert code == 0, err
    assert out.splitlines() == [
        "PJSIP/1001-0000000a -> extension 1001 -> no agent has this device: not an agent",
        "PJSIP/1002-0000000b -> extension 1002 -> agent w2",
    ]
    code, _, err = await _cli("devices", "test", channels[0], "--pbx", "south", env=env)
    assert code == 2 and "--pbx" in err
