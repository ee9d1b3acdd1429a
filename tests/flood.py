"""Helpers for the denial-of-service tests: many raw client sockets, and waiting on a
server's own counters instead of on time."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
from collections.abc import Callable

# What the test process keeps for itself besides the flood (pytest, the database pool,
# the servers' own sockets).
RESERVED_FDS = 1024


def open_files_allowed() -> int:
    """Raise the soft open-file limit to the hard one; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 65536)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return int(soft)


def flood_size(wanted: int, *, server_fds: int) -> int:
    """`wanted` client sockets, or as many as the limit leaves beside the server's own."""
    return max(0, min(wanted, open_files_allowed() - RESERVED_FDS - server_fds))


async def wait_until(predicate: Callable[[], bool], *, within_s: float = 60.0) -> None:
    """Poll `predicate` until it holds (a generous bound, for a busy machine)."""
    async with asyncio.timeout(within_s):
        while not predicate():  # noqa: ASYNC110 - servers' counters have no event to await
            await asyncio.sleep(0.01)


async def open_sockets(
    port: int, count: int, *, send: bytes = b"", batch: int = 50
) -> list[socket.socket]:
    """`count` connections to 127.0.0.1:`port`, each sending `send` (maybe nothing) and
    then never another byte. Opened in batches so the listen backlog never overflows."""
    loop = asyncio.get_running_loop()
    opened: list[socket.socket] = []

    async def one() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        opened.append(sock)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        if send:
            with contextlib.suppress(OSError):  # already evicted: fine
                await loop.sock_sendall(sock, send)

    try:
        for start in range(0, count, batch):
            await asyncio.gather(*(one() for _ in range(min(batch, count - start))))
    except BaseException:
        close_sockets(opened)
        raise
    return opened


def close_sockets(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()
    sockets.clear()
