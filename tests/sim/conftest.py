"""Helpers for simulator tests: a scripted FastAGI server, a raw AMI client, a late clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from bridge.sim import FastClock


class LateClock(FastClock):
    """A FastClock on a loaded machine, made certain: every wake-up is `late_s` simulated
    seconds late (0.6 s at speed 50 is 12 ms of scheduling delay)."""

    def __init__(self, late_s: float = 0.6, speed: float = 50.0) -> None:
        super().__init__(speed=speed)
        self.late_s = late_s
        self.lag = 0.0

    def now(self) -> float:
        return super().now() + self.lag

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
        self.lag += self.late_s


class ScriptedAgi:
    """A FastAGI server that answers every session with fixed commands (like the lab's)."""

    def __init__(self, commands: Callable[[dict[str, str]], list[str]]) -> None:
        self.commands = commands
        self.sessions: list[tuple[dict[str, str], list[tuple[str, str]]]] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        env: dict[str, str] = {}
        while True:
            line = (await reader.readline()).decode("utf-8").rstrip("\n")
            if not line:
                break
            key, _, value = line.partition(": ")
            env[key] = value
        replies: list[tuple[str, str]] = []
        for command in self.commands(env):
            writer.write(command.encode("utf-8") + b"\n")
            await writer.drain()
            replies.append((command, (await reader.readline()).decode().rstrip("\n")))
        self.sessions.append((env, replies))
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


@pytest.fixture
async def scripted_agi() -> AsyncIterator[Callable[..., ScriptedAgi]]:
    servers: list[ScriptedAgi] = []

    async def make(commands: Callable[[dict[str, str]], list[str]]) -> ScriptedAgi:
        agi = ScriptedAgi(commands)
        agi.server = await asyncio.start_server(agi.handle, "127.0.0.1", 0)
        servers.append(agi)
        return agi

    yield make  # type: ignore[misc]
    for agi in servers:
        assert agi.server is not None
        agi.server.close()
        await agi.server.wait_closed()


class AmiClient:
    """A bare AMI client over loopback: send actions, collect raw bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> AmiClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, **fields: str) -> None:
        text = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in fields.items()) + "\r\n"
        self.writer.write(text.encode())
        await self.writer.drain()

    async def message(self) -> dict[str, str]:
        block = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        out: dict[str, str] = {}
        for line in block.decode().split("\r\n"):
            if line:
                key, _, value = line.partition(": ")
                out.setdefault(key, value)
        return out

    async def login(self, username: str, secret: str) -> dict[str, str]:
        await self.send(Action="Login", Username=username, Secret=secret, ActionID="login")
        return await self.message()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


class GatedClock:
    """Simulated time that stands still at every sleep until the test lets it go: a call
    placed on it stops in each state (ringing, talking) for as long as the test needs."""

    def __init__(self, start: float = 1796191627.0) -> None:
        self._now = start
        self._parked: list[tuple[float, asyncio.Future[None]]] = []
        self._changed = asyncio.Condition()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        async with self._changed:
            self._parked.append((max(0.0, seconds), done))
            self._changed.notify_all()
        await done

    async def parked(self, count: int = 1) -> None:
        """Wait until `count` sleeps are waiting."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self._parked) >= count), 10)

    def release(self) -> None:
        """Let every waiting sleep end, time moving on by the longest of them."""
        parked, self._parked = self._parked, []
        if parked:
            self._now += max(seconds for seconds, _ in parked)
        for _, done in parked:
            if not done.done():
                done.set_result(None)
