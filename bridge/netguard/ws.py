"""The connection guard for a `websockets.asyncio.server.serve()` server.

`serve()` builds its protocol objects itself (one `ServerConnection` per socket) and accepts
no factory wrapper, but it takes `create_connection=`: the class it instantiates. This module
makes a subclass of that class which asks the guard first, so a refused socket is aborted
before its handshake is read and never reaches the connection handler:

    guard = ConnectionGuard("pops", max_connections=config.pops.max_connections,
                            first_byte_timeout_s=5.0, header_timeout_s=10.0)
    server = await serve(handler, host, port, create_connection=guarded_connection(guard),
                         open_timeout=10, ...)
    ...
    server.close(); await server.wait_closed(); guard.close()
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from websockets.asyncio.server import ServerConnection

from bridge.netguard.guard import ConnectionGuard, Ticket


def guarded_connection(
    guard: ConnectionGuard, base: type[ServerConnection] = ServerConnection
) -> type[ServerConnection]:
    """A `create_connection` class for `serve()` whose sockets pass through `guard`."""

    class GuardedServerConnection(base):  # type: ignore[valid-type,misc]
        _guard_ticket: Ticket | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self._guard_ticket = guard.admit(cast(asyncio.Transport, transport))
            if self._guard_ticket is not None:
                super().connection_made(transport)

        def data_received(self, data: bytes) -> None:
            ticket = self._guard_ticket
            if ticket is None or ticket.cut_reason is not None:
                return
            guard.received(ticket, data)
            super().data_received(data)

        def eof_received(self) -> Any:
            if self._guard_ticket is None:
                return None
            return super().eof_received()

        def connection_lost(self, exc: Exception | None) -> None:
            ticket = self._guard_ticket
            if ticket is None:  # refused: the connection never started
                return
            super().connection_lost(guard.lost(ticket, exc))

    GuardedServerConnection.__name__ = f"Guarded{base.__name__}"
    GuardedServerConnection.__qualname__ = GuardedServerConnection.__name__
    return GuardedServerConnection
