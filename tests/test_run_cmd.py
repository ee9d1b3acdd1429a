"""`crm-bridge run` as a real process: serves /route, stops on SIGTERM, refuses bad config."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, cast

import asyncpg
import pytest

from bridge.component import Health
from bridge.config import build_config
from bridge.plugin import Context, Plugin
from bridge.runtime import run_bridge, start_plugins
from tests.agi.client import header, play_asterisk
from tests.crm.fixture_crm import load_trace_crm

LISTENING = re.compile(rb"FastAGI listening on 127\.0\.0\.1:(\d+)")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")}


def write_config(path: Path, database_url: str, extra: str = "") -> Path:
    path.write_text(
        f'[database]\nurl = "{database_url}"\n'
        "[ami]\nenabled = false\n"
        '[agi]\nhost = "127.0.0.1"\nport = 0\nbudget_ms = 3000\n'
        '[http]\nhost = "127.0.0.1"\nport = 0\n'
        '[pops]\nhost = "127.0.0.1"\nport = 0\n'
        '[log]\nlevel = "info"\n' + extra,
        encoding="utf-8",
    )
    return path


async def run_cli(*args: str, **kwargs: Any) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean_env(),
        **kwargs,
    )


async def test_run_serves_route_and_stops_cleanly_on_sigterm(
    tmp_path: Path, database_url: str, pool: asyncpg.Pool[Any]
) -> None:
    await load_trace_crm(pool)
    config = write_config(tmp_path / "bridge.toml", database_url)
    proc = await run_cli("--config", str(config), "run", cwd=tmp_path)
    assert proc.stderr is not None and proc.stdout is not None
    log = b""
    try:
        async with asyncio.timeout(30):
            while (match := LISTENING.search(log)) is None:
                line = await proc.stderr.readline()
                assert line, f"exited early: {log.decode(errors='replace')}"
                log += line
        port = int(match.group(1))
        drain = asyncio.ensure_future(proc.stderr.read())
        result = await play_asterisk(port, header(uniqueid="42.1"), linkedid="42.0")
        assert result.variables["BRIDGE_QUEUE"] == "senior"
        assert result.variables["BRIDGE_CUSTOMER_NAME"] == "Alice Chen"
        assert result.variables["BRIDGE_RECORDING"] == "42.0.wav"
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            code = await proc.wait()
            log += await drain
            await proc.stdout.read()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 0, log.decode(errors="replace")
    assert b"Traceback" not in log
    assert re.search(rb"event loop: (uvloop|asyncio)", log)  # which loop it runs on, said once
    # The decision was persisted before the process left (pending records drained).
    row = await pool.fetchrow("SELECT linkedid, queue FROM route_decisions WHERE uniqueid = '42.1'")
    assert row is not None and (row["linkedid"], row["queue"]) == ("42.0", "senior")


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("[routing]\ndefault_priority = 'high'\n", "routing.default_priority"),
        ("[pbx]\ndefault_region = 'XX'\n", "pbx.default_region"),
        ("[nonsense]\nx = 1\n", "nonsense"),
    ],
)
async def test_run_with_bad_config_exits_2_naming_the_key(
    tmp_path: Path, database_url: str, extra: str, key: str
) -> None:
    config = write_config(tmp_path / "bridge.toml", database_url, extra)
    proc = await run_cli("--config", str(config), "run", cwd=tmp_path)
    async with asyncio.timeout(30):
        _, err = await proc.communicate()
    assert proc.returncode == 2
    assert key in err.decode() and err.decode().count("\n") == 1


async def test_run_with_ami_enabled_and_no_credentials_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "bridge.toml").write_text("[agi]\nport = 0\n", encoding="utf-8")
    proc = await run_cli("--config", str(tmp_path / "bridge.toml"), "run", cwd=tmp_path)
    async with asyncio.timeout(30):
        _, err = await proc.communicate()
    assert proc.returncode == 2
    assert "ami.username" in err.decode()


async def test_run_with_a_missing_config_file_exits_2(tmp_path: Path) -> None:
    proc = await run_cli("--config", str(tmp_path / "nope.toml"), "run", cwd=tmp_path)
    async with asyncio.timeout(30):
        _, err = await proc.communicate()
    assert proc.returncode == 2
    assert "--config" in err.decode()


# --- the composition root, in process ------------------------------------------------------


class Part:
    """A component that notes when it starts and stops."""

    def __init__(self, name: str, log: list[str], *, fail: bool = False) -> None:
        self.name = name
        self._log = log
        self._fail = fail

    async def start(self) -> None:
        if self._fail:
            raise RuntimeError(f"{self.name} cannot start")
        self._log.append(f"start {self.name}")

    async def stop(self) -> None:
        self._log.append(f"stop {self.name}")

    def health(self) -> Health:
        return Health("up")


def bare_context(plugins: list[Plugin]) -> Context:
    """A context whose plugins need no database."""
    return Context(build_config({}, {}, runtime=False), cast(Any, None), plugins)


async def test_components_start_in_order_and_stop_in_reverse() -> None:
    log: list[str] = []
    plugins = [
        Plugin("a", build=lambda ctx: Part("a", log)),
        Plugin("off", build=lambda ctx: None),  # a disabled feature
        Plugin("routes", routes=lambda http, ctx: None),  # routes only: no component
        Plugin("b", build=lambda ctx: Part("b", log)),
    ]
    async with AsyncExitStack() as stack:
        rt = await start_plugins(stack, bare_context(plugins))
        assert list(rt.components) == ["a", "b"]
        assert {n: h.state for n, h in rt.health().items() if n in ("a", "b")} == {
            "a": "up",
            "b": "up",
        }
    assert log == ["start a", "start b", "stop b", "stop a"]


async def test_a_component_failing_to_start_stops_those_already_started() -> None:
    log: list[str] = []
    plugins = [
        Plugin("a", build=lambda ctx: Part("a", log)),
        Plugin("b", build=lambda ctx: Part("b", log, fail=True)),
        Plugin("c", build=lambda ctx: Part("c", log)),
    ]
    with pytest.raises(RuntimeError, match="b cannot start"):
        async with AsyncExitStack() as stack:
            await start_plugins(stack, bare_context(plugins))
    assert log == ["start a", "stop a"]


async def test_run_bridge_starts_the_registry_serves_route_and_stops(
    database_url: str, pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    await load_trace_crm(pool)
    config = build_config(
        {
            "database": {"url": database_url},
            "ami": {"enabled": False},
            "agi": {"port": 0, "budget_ms": 3000},
            "http": {"port": 0},
            "pops": {"port": 0},
            "records": {"spool_dir": str(tmp_path / "spool")},
        },
        {},
    )
    stop = asyncio.Event()
    ready: asyncio.Future[Context] = asyncio.get_running_loop().create_future()
    bridge = asyncio.ensure_future(run_bridge(config, stop=stop, started=ready.set_result))
    try:
        async with asyncio.timeout(30):
            await asyncio.wait([ready, cast(Any, bridge)], return_when=asyncio.FIRST_COMPLETED)
        rt = ready.result()
        assert list(rt.components) == [
            "event_loop",
            "database",
            "cluster",
            "listener",
            "directory",
            "rules",
            "roster",
            "alerts",
            "crm",
            "records",
            "outbox",
            "merge_notice",
            "reconcile",
            "route",
            "card_views",
            "pops",
            "wallboard",
            "participants",
            "agi",
            "http",
            "monitor",
        ]
        health = rt.health()
        assert health["agi"].state == "up" and health["database"].state == "up"
        assert set(health["event_loop"].detail) == {"lag_max_ms", "lag_last_ms"}
        assert health["ami"].state == "disabled" and health["ari"].state == "disabled"
        result = await play_asterisk(rt.get("agi").port, header(uniqueid="77.1"), linkedid="77.0")
        assert result.variables["BRIDGE_QUEUE"] == "senior"
        monitor = rt.get("monitor")  # watches what runs: no AMI here, so no AMI watch
        assert "ami_down" not in monitor.watches and "routing_degraded" in monitor.watches
        assert await monitor.check() == []
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await bridge
    row = await pool.fetchrow("SELECT queue FROM route_decisions WHERE uniqueid = '77.1'")
    assert row is not None and row["queue"] == "senior"
