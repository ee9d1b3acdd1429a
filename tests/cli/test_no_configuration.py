"""A command typed where nothing is configured says where it looked and creates nothing
(issue 17: it used to start an embedded PostgreSQL in ./.crm-bridge/ of any folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.cli.main import main


@pytest.mark.parametrize(
    "command",
    [
        ["rules", "list"],
        ["agents", "list"],
        ["customers", "dedup"],
        ["customers", "import", "c.csv"],
        ["db", "migrate"],
    ],
)
def test_no_configuration_and_no_demo_folder_is_exit_2_and_creates_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    for key in ("CRM_BRIDGE_DATABASE_URL", "CRM_BRIDGE_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    Path("c.csv").write_text("name,phones\nA,+15551230001\n", encoding="utf-8")
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "database.url" in err and "CRM_BRIDGE_DATABASE_URL=postgresql://" in err
    assert "./crm-bridge.toml" in err and str(tmp_path / ".crm-bridge") in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv"]
