"""`crm-bridge doctor` with several PBXs: the AMI and ARI checks run once per PBX."""

from __future__ import annotations

from bridge.config import build_config
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
