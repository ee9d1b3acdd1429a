"""FastAGI client: what Asterisk does when the dialplan runs `AGI(agi://host:port/script)`.

It connects, sends the `agi_*` environment, then answers each command line the server
sends until the server closes the connection. `answer(line)` decides each reply (the PBX
keeps the channel variables). The session's outcome is Asterisk's `AGISTATUS`:
SUCCESS, or FAILURE when the server cannot be reached or breaks the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from bridge.sim.wire import MAX_AGI_LINE, encode_agi_env

log = logging.getLogger(__name__)

Answer = Callable[[str], Awaitable[bytes]]


async def run_agi(
    host: str,
    port: int,
    env: Iterable[tuple[str, str]],
    answer: Answer,
    *,
    timeout_s: float = 10.0,
    max_commands: int = 200,
) -> str:
    """Run one FastAGI session; return AGISTATUS (`SUCCESS` or `FAILURE`)."""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port, limit=MAX_AGI_LINE * 2)
    except (OSError, TimeoutError) as exc:
        log.warning("FastAGI server %s:%s unreachable: %s", host, port, exc)
        return "FAILURE"
    try:
        async with asyncio.timeout(timeout_s):
            writer.write(encode_agi_env(env))
            await writer.drain()
            for _ in range(max_commands):
                try:
                    raw = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    if exc.partial.strip():
                        log.warning("FastAGI command cut off by the server")
                    return "SUCCESS"
                except asyncio.LimitOverrunError:
                    log.warning("FastAGI command line too long")
                    return "FAILURE"
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not line.strip():
                    continue
                writer.write(await answer(line))
                await writer.drain()
            log.warning("FastAGI server sent more than %d commands", max_commands)
            return "FAILURE"
    except TimeoutError:
        log.warning("FastAGI session timed out")
        return "FAILURE"
    except OSError as exc:
        log.warning("FastAGI session failed: %s", exc)
        return "FAILURE"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
