"""`crm-bridge doctor` against the PBX simulator and a real database: a least-privilege AMI
user passes, a wrong secret fails, an over-privileged user passes with warnings, a user that
may not list channels fails; `crm-bridge alerts test` reaches every channel."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bridge.ami.protocol import Frame
from bridge.cli.doctor_cmd import send_test
from bridge.cli.main import main
from bridge.config import Config, build_config
from bridge.doctor import format_check, run_checks
from bridge.doctor.ami import classify
from bridge.sim import AmiServer, AmiUser, SimConfig, SimPbx
from tests.alerts.conftest import all_channels
from tests.alerts.receivers import SmsGateway, SmtpReceiver, WebhookReceiver

LEAST = AmiUser(
    "least", "l3ast", frozenset({"call", "agent", "cdr"}), frozenset({"reporting", "originate"})
)
NO_DIAL = AmiUser("nodial", "n0dial", frozenset({"call", "agent", "cdr"}), frozenset({"reporting"}))
OVER = AmiUser("over", "0ver")  # read = all, write = all
NO_LIST = AmiUser("nolist", "n0list", frozenset({"call", "agent", "cdr"}), frozenset())


@pytest.fixture
async def pbx() -> AsyncIterator[AmiServer]:
    server = AmiServer(SimPbx(SimConfig(ami_users=(LEAST, OVER, NO_LIST, NO_DIAL))))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def agi_port() -> AsyncIterator[int]:
    """Something listening where FastAGI should (the bridge's own server in real life)."""

    async def hang_up(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(database_url: str, ami_port: int, user: AmiUser, agi_port: int, **alerts: Any) -> Config:
    return build_config(
        {
            "database": {"url": database_url},
            "ami": {"port": ami_port, "username": user.username, "secret": user.secret},
            "agi": {"port": agi_port},
            "alerts": alerts,
        },
        {},
    )


def lines(checks: list[Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for check in checks:
        out.setdefault(check.name, []).append(check.status)
    return out


async def test_least_privilege_user_passes_every_check(
    database_url: str, pbx: AmiServer, agi_port: int
) -> None:
    checks = await run_checks(
        config(database_url, pbx.port, LEAST, agi_port, webhook_url="http://127.0.0.1:9/x")
    )
    assert lines(checks) == {
        "config": ["ok"],
        "database": ["ok"],
        "migrations": ["ok"],
        "ami": ["ok"],
        "ami write": ["ok"],
        "ami originate": ["ok"],
        "ami read": ["ok"],
        "ari": ["ok"],
        "agi": ["ok"],
        "crm": ["ok"],
        "alerts": ["ok"],
    }
    text = [format_check(c) for c in checks]
    assert all("\n" not in t for t in text)
    assert "OK   ami: logged in as 'least' at 127.0.0.1:" in text[3]


async def test_a_user_that_may_not_originate_is_warned_click_to_call_is_off(
    database_url: str, pbx: AmiServer, agi_port: int
) -> None:
    checks = await run_checks(config(database_url, pbx.port, NO_DIAL, agi_port))
    (dial,) = [c for c in checks if c.name == "ami originate"]
    assert dial.status == "warn" and "write = originate" in dial.detail
    assert not any(c.status == "fail" for c in checks)


async def test_wrong_secret_fails_and_never_prints_it(
    database_url: str, pbx: AmiServer, agi_port: int
) -> None:
    wrong = AmiUser("least", "not-the-secret")
    checks = await run_checks(config(database_url, pbx.port, wrong, agi_port))
    (ami,) = [c for c in checks if c.name.startswith("ami")]
    assert ami.status == "fail" and "Authentication failed" in ami.detail
    assert all("not-the-secret" not in format_check(c) for c in checks)


async def test_over_privileged_user_is_warned_about_system_and_command(
    database_url: str, pbx: AmiServer, agi_port: int
) -> None:
    checks = await run_checks(config(database_url, pbx.port, OVER, agi_port))
    by_name = lines(checks)
    assert by_name["ami"] == ["ok"]
    assert by_name["ami write"] == ["ok", "warn"]
    assert by_name["ami read"] == ["warn"]
    warning = next(c for c in checks if c.name == "ami write" and c.status == "warn")
    assert "Command" in warning.detail and "UpdateConfig" in warning.detail
    assert by_name["alerts"] == ["warn"]  # no channel configured
    assert not any(c.status == "fail" for c in checks)


async def test_a_user_that_may_not_list_channels_fails(
    database_url: str, pbx: AmiServer, agi_port: int
) -> None:
    checks = await run_checks(config(database_url, pbx.port, NO_LIST, agi_port))
    failed = [c for c in checks if c.status == "fail"]
    assert [c.name for c in failed] == ["ami write"]
    assert "CoreShowChannels (write = reporting)" in failed[0].detail


async def test_unreachable_pbx_agi_and_unmigrated_database_each_fail(
    database_url: str, pool: asyncpg.Pool[Any]
) -> None:
    last = await pool.fetchval("SELECT max(name) FROM schema_migrations")
    await pool.execute("DELETE FROM schema_migrations WHERE name = $1", last)
    try:
        checks = await run_checks(config(database_url, closed_port(), LEAST, closed_port()))
    finally:  # the database is shared by the session's tests: put the row back
        await pool.execute("INSERT INTO schema_migrations (name) VALUES ($1)", last)
    by_name = lines(checks)
    assert by_name["ami"] == ["fail"] and by_name["agi"] == ["fail"]
    assert by_name["migrations"] == ["fail"]
    assert by_name["database"] == ["ok"]


def test_classify_reads_what_asterisk_reveals() -> None:
    frames = [
        Frame([("Response", "Success"), ("ActionID", "doctor-login")]),
        Frame([("Event", "FullyBooted"), ("Privilege", "system,all")]),
        Frame(
            [
                ("Response", "Success"),
                ("ActionID", "doctor-list"),
                ("Ping", "Keepalive command. (Priv: <none>)"),
                ("Command", "Execute Asterisk CLI Command. (Priv: command,all)"),
                ("Hangup", "Hangup channel. (Priv: system,call,all)"),
            ]
        ),
    ]
    found = classify(frames)
    assert found.logged_in and found.reads_system
    assert found.missing_actions() == ["CoreShowChannels"]
    assert found.risky_actions() == ["Command"]  # Hangup also needs call: not only risky


def test_doctor_command_prints_one_line_per_check_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = tmp_path / "crm-bridge.toml"
    toml.write_text(
        "[database]\nurl = 'postgresql://nobody@127.0.0.1:1/none'\n"
        f"[ami]\nport = {closed_port()}\nusername = 'u'\nsecret = 'hunter2'\n"
        f"[agi]\nport = {closed_port()}\n",
        encoding="utf-8",
    )
    assert main(["--config", str(toml), "doctor"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == [
        "OK   config",
        "FAIL database",
        "FAIL ami",
        "OK   ari",
        "FAIL agi",
        "OK   crm",
        "WARN alerts",
    ]
    assert "hunter2" not in "\n".join(out)


def test_doctor_names_a_bad_configuration_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = tmp_path / "crm-bridge.toml"
    toml.write_text("[alerts]\nlink_down_s = -1\n", encoding="utf-8")
    assert main(["--config", str(toml), "doctor"]) == 1
    assert capsys.readouterr().out.startswith("FAIL config: ")


def test_alerts_test_reports_each_channel_and_exits_1_on_a_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = tmp_path / "crm-bridge.toml"
    toml.write_text(
        f"[ami]\nenabled = false\n[alerts]\nwebhook_url = 'http://127.0.0.1:{closed_port()}/x'\n",
        encoding="utf-8",
    )
    assert main(["--config", str(toml), "alerts", "test"]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("FAIL alerts webhook: ")
    empty = tmp_path / "none.toml"
    empty.write_text("[ami]\nenabled = false\n", encoding="utf-8")
    assert main(["--config", str(empty), "alerts", "test"]) == 1
    assert "no alert channel" in capsys.readouterr().err


async def test_alerts_test_reaches_webhook_mail_and_sms(
    hook: WebhookReceiver, smtp: SmtpReceiver, gateway: SmsGateway
) -> None:
    cfg = build_config({"ami": {"enabled": False}}, {}, runtime=False)
    cfg = type(cfg)(**{**cfg.__dict__, "alerts": all_channels(hook, smtp, gateway)})
    assert await send_test(cfg) == {"webhook": None, "email": None, "sms": None}
    assert hook.received[0]["status"] == "test"
    assert "this channel works" in str(smtp.messages[0]["Subject"])
    assert "this channel works" in gateway.texts()[0]
