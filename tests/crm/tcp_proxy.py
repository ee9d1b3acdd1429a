"""A loopback TCP proxy whose existing connections can be frozen: bytes stop flowing both
ways while the sockets stay open, which is what a half-open connection looks like."""

from __future__ import annotations

import asyncio
import contextlib


class FreezingProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._pipes: list[tuple[asyncio.Event, list[asyncio.StreamWriter]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def freeze_existing(self) -> None:
        for frozen, _ in self._pipes:
            frozen.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        frozen = asyncio.Event()
        self._pipes.append((frozen, [writer, up_writer]))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst, frozen))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pump(
        src: asyncio.StreamReader, dst: asyncio.StreamWriter, frozen: asyncio.Event
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while not frozen.is_set():
                data = await src.read(65536)
                if not data:
                    break
                if frozen.is_set():
                    break  # swallowed: the peer never hears of it
                dst.write(data)
                await dst.drain()
            if frozen.is_set():
                await asyncio.Event().wait()  # hold the socket open, silent, until closed
        dst.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for _, writers in self._pipes:
            for w in writers:
                w.close()
                with contextlib.suppress(OSError, ConnectionError):
                    await w.wait_closed()
        if self._server is not None:
            await self._server.wait_closed()
