"""Real `crm-bridge run` processes for the cluster tests: each with its own ports, spool and
instance id, a small database pool, its log in a file; `/healthz` polled until a condition
holds, within a deadline (never a fixed sleep)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")}


class Bridge:
    """One `crm-bridge run` process."""

    def __init__(
        self,
        folder: Path,
        instance_id: str,
        database_url: str,
        extra: str = "",
        *,
        agi_port: int | None = None,
    ) -> None:
        self.id = instance_id
        self.folder = folder / instance_id
        self.folder.mkdir(parents=True)
        self.agi_port = agi_port or free_port()
        self.http_port, self.pops_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.config = self.folder / "bridge.toml"
        self.config.write_text(
            f'[database]\nurl = "{database_url}"\npool_size = 3\n'
            f'[cluster]\ninstance_id = "{instance_id}"\ntakeover_s = 2.0\n'
            f'[agi]\nhost = "127.0.0.1"\nport = {self.agi_port}\nbudget_ms = 3000\n'
            f'[http]\nhost = "127.0.0.1"\nport = {self.http_port}\n'
            f'[pops]\nhost = "127.0.0.1"\nport = {self.pops_port}\n'
            f'[records]\nspool_dir = "{self.folder / "spool"}"\n'
            '[log]\nlevel = "info"\n' + (extra or "[ami]\nenabled = false\n"),
            encoding="utf-8",
        )
        self.log = self.folder / "bridge.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bridge",
                "--config",
                str(self.config),
                "run",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=clean_env(),
                cwd=self.folder,
            )

    def kill(self) -> None:
        """SIGKILL: no clean stop, its sockets (and database sessions) just close."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    async def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(60):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode

    def logged(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    async def health(self) -> dict[str, Any] | None:
        """/healthz's body, or None while the process does not answer."""
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
                http.get(f"{self.url}/healthz") as resp,
            ):
                body = await resp.json()
                return body if isinstance(body, dict) else None
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError):
            return None

    async def until(
        self, condition: Callable[[dict[str, Any]], bool], deadline_s: float = 90.0
    ) -> dict[str, Any]:
        """Poll /healthz until `condition(body)`; fail naming the last body and the log."""
        last: dict[str, Any] | None = None
        try:
            async with asyncio.timeout(deadline_s):
                while True:
                    assert self.proc is not None
                    assert self.proc.returncode is None, f"{self.id} exited:\n{self.logged()}"
                    last = await self.health()
                    if last is not None and condition(last):
                        return last
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise AssertionError(
                f"{self.id}: condition not met; last /healthz {last}\n{self.logged()[-4000:]}"
            ) from None


def role(body: dict[str, Any]) -> str | None:
    instance = body.get("instance") or {}
    return instance.get("role")


def peers(body: dict[str, Any]) -> list[str]:
    return [p["id"] for p in (body.get("instance") or {}).get("peers", [])]


def detail(body: dict[str, Any], component: str) -> dict[str, Any]:
    return dict(body["components"].get(component, {}).get("detail", {}))
