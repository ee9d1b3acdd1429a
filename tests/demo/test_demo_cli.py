"""`crm-bridge demo` command-line checks (bad usage exits 2 before anything starts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.cli.main import main


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--calls-per-minute", "0"],
        ["demo", "--calls-per-minute", "-3"],
        ["demo", "--duration", "0"],
        ["demo", "--ami-port", "70000"],
    ],
)
def test_bad_options_exit_2_with_a_reason(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("crm-bridge: ") and err.count("\n") == 1
    assert not (tmp_path / ".crm-bridge").exists()  # nothing was started


def test_a_bad_configuration_value_exits_2_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CRM_BRIDGE_HTTP_PORT", "eighty")
    assert main(["demo"]) == 2
    assert "http.port" in capsys.readouterr().err


def test_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--calls-per-minute", "--duration", "--ami-port", "--technology"):
        assert option in out
