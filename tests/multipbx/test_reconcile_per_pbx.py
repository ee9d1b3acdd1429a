"""Each PBX reconciles from its own CDR store, in its own namespace: two PBXs whose CDRs carry
the same Uniqueids get two sets of rebuilt records, each with its own agents and decision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg

from bridge.config import build_config
from bridge.crm.agents import create_agent
from bridge.sync.namespaced import site_reconciler
from tests.records.helpers import ended_events, seed_crm
from tests.sync.test_cdr_store import SCENARIOS, master_csv


async def test_each_pbx_rebuilds_its_own_calls_from_its_own_cdrs(
    pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    async with pool.acquire() as conn:
        await seed_crm(conn)
    for pbx in ("east", "west"):
        (tmp_path / pbx).mkdir()
        (tmp_path / pbx / "Master.csv").write_bytes(master_csv())  # the same Uniqueids
        await create_agent(pool, f"{pbx}-2001", f"{pbx} 2001", "agent", "2001", pbx)
    vip = ended_events("vip-answered")[0].call_id
    await pool.execute(  # east routed its VIP call; west's route request was not recorded
        "INSERT INTO route_decisions (uniqueid, linkedid, channel, caller, did, customer_id,"
        " queue, rule, recording) VALUES ($1, $1, 'PJSIP/trunk-1', '+15551230001', '100',"
        " NULL, 'senior', 'vip', 'east.wav')",
        f"east:{vip}",
    )
    config = build_config(
        {
            "pbx": [
                {
                    "name": pbx,
                    "cdr_source": f"csv:{tmp_path / pbx / 'Master.csv'}",
                    # the recorded traces' calls are weeks old: look back far enough
                    "max_call_s": 10**8,
                }
                for pbx in ("east", "west")
            ]
        },
        {},
        runtime=False,
    )
    east, west = (site_reconciler(config, site, pool, None) for site in config.pbxs)
    assert east is not None and west is not None

    found = await east.run_once()
    assert found is not None and found.unrebuildable == ()
    ids = {e.call_id for s in SCENARIOS for e in ended_events(s)}
    rows = await pool.fetch("SELECT call_id, source FROM call_records")
    assert {r["call_id"] for r in rows} == {f"east:{i}" for i in ids}  # west's left alone

    found = await west.run_once()
    assert found is not None and found.backfilled == len(ids)
    rows = await pool.fetch("SELECT * FROM call_records")
    assert {r["call_id"] for r in rows} == {f"{p}:{i}" for p in ("east", "west") for i in ids}
    assert {r["source"] for r in rows} == {"reconciled"}
    by_id = {r["call_id"]: r for r in rows}
    east_vip, west_vip = by_id[f"east:{vip}"], by_id[f"west:{vip}"]
    assert (east_vip["rule"], east_vip["recording_path"]) == ("vip", "east.wav")
    assert west_vip["rule"] is None
    assert [a["agent"] for a in east_vip["agents"]] == ["east-2001"]
    assert [a["agent"] for a in west_vip["agents"]] == ["west-2001"]

    again = await east.run_once()
    assert again is not None and again.backfilled == 0
