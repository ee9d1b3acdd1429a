"""`crm-bridge crm setup NAME` and `crm-bridge crm check [NUMBER]` through the real CLI,
against the fake vendors on loopback (the fakes run in a thread: the CLI owns its loop)."""

from __future__ import annotations

import asyncio
import io
import os
import stat
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.cli.crm_cmd import replace_section
from bridge.cli.main import main
from tests.connectors.prebuilt_fixtures import KNOWN, credentials_for, make_fake, seed


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("CRM_BRIDGE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


class ThreadedFake:
    """A fake vendor served from its own event loop in a thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.name = name
        self.fake: Any = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def up() -> None:
            self.fake = make_fake(self.name)
            seed(self.name, self.fake)
            await self.fake.start()

        self.loop.run_until_complete(up())
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self) -> Any:
        self.thread.start()
        self.ready.wait(30)
        return self.fake

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture
def salesforce() -> Iterator[Any]:
    with ThreadedFake("salesforce") as fake:
        yield fake


def _setup(monkeypatch: pytest.MonkeyPatch, url: str, lines: list[str], *extra: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(f"{x}\n" for x in lines)))
    return main(["crm", "setup", "salesforce", "--url", url, *extra])


def test_setup_writes_the_crm_section_and_a_private_credentials_file(
    cli_env: Path,
    salesforce: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (cli_env / "crm-bridge.toml").write_text(
        '[routing]\ndefault_queue = "sales"\n\n'
        '[crm]\nconnector = "builtin"\ntimeout_ms = 900\n\n'
        '[log]\nlevel = "info"\n'
    )
    creds = credentials_for("salesforce")
    assert _setup(monkeypatch, salesforce.url, [creds["client_id"], creds["client_secret"]]) == 0
    out = capsys.readouterr().out
    assert "CallDurationInSeconds" in out and creds["client_secret"] not in out
    config = tomllib.loads((cli_env / "crm-bridge.toml").read_text())
    assert config["routing"] == {"default_queue": "sales"} and config["log"] == {"level": "info"}
    assert (
        config["crm"]["connector"] == "salesforce" and config["crm"]["base_url"] == salesforce.url
    )
    assert "timeout_ms" not in config["crm"]
    secrets = Path(config["crm"]["credentials_file"])
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert creds["client_secret"] not in (cli_env / "crm-bridge.toml").read_text()

    assert main(["crm", "check", "(555) 123-0001"]) == 0
    out = capsys.readouterr().out
    assert "Alice Chen" in out and "No dial tone" in out and "Fibre upgrade" in out
    assert '"CallDurationInSeconds": 75' in out and KNOWN in out
    assert salesforce.tasks == {}  # check writes nothing
    assert salesforce.violations == []


def test_check_names_bad_credentials(
    cli_env: Path,
    salesforce: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _setup(monkeypatch, salesforce.url, ["3MVG9-client-id", "wrong-secret"]) == 0
    capsys.readouterr()
    assert main(["crm", "check", KNOWN]) == 1
    err = capsys.readouterr().err
    assert "bad credentials" in err and "wrong-secret" not in err


def test_check_says_rate_limited(
    cli_env: Path,
    salesforce: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    creds = credentials_for("salesforce")
    assert _setup(monkeypatch, salesforce.url, [creds["client_id"], creds["client_secret"]]) == 0
    salesforce.hostile = "429"
    assert main(["crm", "check", KNOWN]) == 1
    assert "rate-limited: try again in 120 s" in capsys.readouterr().err


def test_check_refuses_a_loose_credentials_file_and_bad_usage(
    cli_env: Path,
    salesforce: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    creds = credentials_for("salesforce")
    assert _setup(monkeypatch, salesforce.url, [creds["client_id"], creds["client_secret"]]) == 0
    assert main(["crm", "check", "not a number"]) == 2
    os.chmod(cli_env / "crm-bridge.secrets", 0o644)
    assert main(["crm", "check", KNOWN]) == 2
    assert "chmod 600" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["crm", "setup", "odoo", "--url", salesforce.url]) == 2  # no --database


def test_check_with_the_builtin_connector_is_bad_usage(cli_env: Path) -> None:
    assert main(["crm", "check"]) == 2


def test_replace_section_keeps_the_other_tables() -> None:
    doc = '[a]\nx = 1\n\n[crm]\nconnector = "rest"\n[crm.x]\n\n[b]\ny = 2\n'
    out = replace_section(doc, "crm", '[crm]\nconnector = "odoo"\n')
    assert tomllib.loads(out)["a"] == {"x": 1} and tomllib.loads(out)["b"] == {"y": 2}
    assert replace_section("", "crm", "[crm]\n") == "[crm]\n"


def test_setup_takes_the_tags_field_and_says_how_changes_arrive(
    cli_env: Path,
    salesforce: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    creds = credentials_for("salesforce")
    lines = [creds["client_id"], creds["client_secret"]]
    assert _setup(monkeypatch, salesforce.url, lines, "--tags-field", "Tags__c") == 0
    out = capsys.readouterr().out
    assert "polling every [crm] poll_s" in out and "Outbound Messages" in out
    config = tomllib.loads((cli_env / "crm-bridge.toml").read_text())
    assert config["crm"]["tags_field"] == "Tags__c"
    assert _setup(monkeypatch, salesforce.url, lines, "--tags-field", "bad field") == 2


def test_setup_stores_a_webhook_secret_given_in_the_environment(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("pat-na1-token\n"))
    assert main(["crm", "setup", "hubspot"]) == 0
    assert "webhook off: set $CRM_BRIDGE_CRM_WEBHOOK_SECRET" in capsys.readouterr().out
    monkeypatch.setenv("CRM_BRIDGE_CRM_WEBHOOK_SECRET", "app-client-secret")
    monkeypatch.setattr("sys.stdin", io.StringIO("pat-na1-token\n"))
    assert main(["crm", "setup", "hubspot"]) == 0
    out = capsys.readouterr().out
    assert "X-HubSpot" not in out and "app-client-secret" not in out
    assert "webhook at POST /webhooks/crm/hubspot" in out and "webhook off" not in out
    secrets = tomllib.loads((cli_env / "crm-bridge.secrets").read_text())
    assert secrets == {"token": "pat-na1-token", "webhook_secret": "app-client-secret"}
