"""run_demo wires database, demo CRM, simulator and bridge, and tears all of it down.

The bridge here is a stand-in (a FastAGI server that routes every call to `senior` and an
HTTP port), so the orchestration is tested on its own; test_demo_command runs the real one.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bridge.config import Config, build_config
from bridge.db.embedded import read_postmaster
from bridge.demo.run import DemoOptions, run_demo

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeBridge:
    def __init__(self) -> None:
        self.config: Config | None = None
        self.sessions: list[dict[str, str]] = []
        self.ami_frames: list[bytes] = []
        self.first_session = asyncio.Event()
        self.stopped = False

    async def agi(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        env = {}
        while line := (await reader.readline()).decode().strip():
            key, _, value = line.partition(": ")
            env[key] = value
        if env:
            self.sessions.append(env)
            writer.write(b'SET VARIABLE BRIDGE_QUEUE "senior"\n')
            await writer.drain()
            await reader.readline()
            self.first_session.set()
        writer.close()

    async def __call__(
        self, config: Config, *, stop: asyncio.Event, started: Callable[[Any], None]
    ) -> None:
        self.config = config
        agi = await asyncio.start_server(self.agi, config.agi.host, config.agi.port)
        http = await asyncio.start_server(
            lambda r, w: w.close(), config.http.host, config.http.port
        )
        # log in to the simulator's AMI like the real bridge would
        reader, writer = await asyncio.open_connection(config.ami.host, config.ami.port)
        await reader.readline()
        writer.write(
            f"Action: Login\r\nUsername: {config.ami.username}\r\n"
            f"Secret: {config.ami.secret}\r\n\r\n".encode()
        )
        await writer.drain()
        self.ami_frames.append(await reader.readuntil(b"\r\n\r\n"))
        started(object())  # everything listens: report it, as run_bridge does
        try:
            await stop.wait()
        finally:
            writer.close()
            for server in (agi, http):
                server.close()
                await server.wait_closed()
            self.stopped = True


async def test_demo_runs_calls_into_the_bridge_and_stops_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {
        "CRM_BRIDGE_AGI_PORT": str(free_port()),
        "CRM_BRIDGE_HTTP_PORT": str(free_port()),
        "CRM_BRIDGE_POPS_PORT": str(free_port()),
    }
    config = build_config({}, env, runtime=False)
    bridge = FakeBridge()
    out = io.StringIO()
    stop = asyncio.Event()
    demo = asyncio.ensure_future(
        run_demo(config, DemoOptions(calls_per_minute=120), stop=stop, out=out, run_bridge=bridge)
    )
    try:
        await asyncio.wait_for(bridge.first_session.wait(), 60)
        text = out.getvalue()
        assert f"open the agent page: http://127.0.0.1:{env['CRM_BRIDGE_HTTP_PORT']}/agent" in text
        agents = dict(re.findall(r"^agent (\S+) (\S+)$", text, re.M))
        assert set(agents) == {"1001", "1002", "2001", "2002", "lead", "admin"}
        assert all(len(token) >= 32 for token in agents.values())
        # the bridge got the embedded database and the simulator's AMI credentials
        assert bridge.config is not None
        assert bridge.config.database.url.startswith("postgresql://")
        assert b"Authentication accepted" in bridge.ami_frames[0]
        assert bridge.sessions[0]["agi_network_script"] == "route"
        conn = await asyncpg.connect(bridge.config.database.url)
        assert await conn.fetchval("SELECT count(*) FROM customers") >= 30
        await conn.close()
    finally:
        stop.set()
        await asyncio.wait_for(demo, 60)
    assert bridge.stopped
    assert read_postmaster(tmp_path / ".crm-bridge" / "pgdata") is None
    assert (tmp_path / ".crm-bridge" / "pgdata" / "PG_VERSION").exists()


async def test_a_bridge_that_fails_to_start_ends_the_demo_with_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    async def broken(config: Config, *, stop: asyncio.Event, started: Any) -> Any:
        raise OSError("address already in use")

    config = build_config({}, {"CRM_BRIDGE_AGI_PORT": str(free_port())}, runtime=False)
    with pytest.raises(OSError, match="address already in use"):
        await asyncio.wait_for(
            run_demo(
                config, DemoOptions(), stop=asyncio.Event(), out=io.StringIO(), run_bridge=broken
            ),
            60,
        )
    with contextlib.suppress(FileNotFoundError):
        assert read_postmaster(tmp_path / ".crm-bridge" / "pgdata") is None


async def test_a_bridge_that_reports_its_start_is_waited_for_not_polled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    started_with: list[object] = []

    async def reporting(config: Config, *, stop: asyncio.Event, started: Any) -> None:
        # listens on nothing: only the report says it is ready
        started_with.append(config)
        started(object())
        await stop.wait()

    out = io.StringIO()
    stop = asyncio.Event()
    config = build_config({}, {"CRM_BRIDGE_AGI_PORT": str(free_port())}, runtime=False)
    demo = asyncio.ensure_future(
        run_demo(config, DemoOptions(), stop=stop, out=out, run_bridge=reporting)
    )
    for _ in range(600):
        if "simulated PBX" in out.getvalue() or demo.done():
            break
        await asyncio.sleep(0.1)
    assert "simulated PBX" in out.getvalue() and started_with
    stop.set()
    await asyncio.wait_for(demo, 60)
