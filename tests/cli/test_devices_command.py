"""`crm-bridge devices test CHANNEL...`: which agent a channel name maps to (issue 19)."""

from __future__ import annotations

import pytest

from bridge.cli.main import main
from tests.cli.test_crm_commands import cli_db  # noqa: F401  (the fixture)


def test_each_channel_shows_its_extension_and_agent(
    cli_db: str,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert main(["agents", "add", "ann", "--name", "Ann", "--device", "1001"]) == 0
    capsys.readouterr()
    monkeypatch.setenv(
        "CRM_BRIDGE_PBX_DEVICE_PATTERN",
        '["^PJSIP/(?P<ext>\\\\d+)-", "^Local/(?P<ext>\\\\d+)@from-queue"]',
    )
    channels = [
        "PJSIP/1001-0000000a",
        "Local/1001@from-queue-0000001f;1",
        "PJSIP/1002-0000000b",
        "Local/600@ext-group-00000002;1",
    ]
    assert main(["devices", "test", *channels]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "PJSIP/1001-0000000a -> extension 1001 (pattern 1) -> agent ann",
        "Local/1001@from-queue-0000001f;1 -> extension 1001 (pattern 2) -> agent ann",
        "PJSIP/1002-0000000b -> extension 1002 (pattern 1) -> no agent has this device:"
        " not an agent",
        "Local/600@ext-group-00000002;1 -> no extension (no device_pattern matches): not an agent",
    ]


def test_a_name_with_line_breaks_is_refused(
    cli_db: str,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["devices", "test", "--no-db", "PJSIP/1001\r\nAction: Hangup"]) == 2
    assert "not a channel name" in capsys.readouterr().err
