"""`HttpServer`: the aiohttp application served on `[http]` host/port as a Component.

The listening socket is our own `loop.create_server` with the application's protocol
factory wrapped by a `ConnectionGuard` (aiohttp's sites take no wrapper): at most
`[http] max_connections` open, the oldest one still sending its request head dropped first,
and a head not complete within `[http] header_timeout_s` cut. Without these, slow clients
hold sockets until the process runs out of file descriptors, and FastAGI, the pops and
`/healthz` go down with the HTTP port.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from bridge.component import Health
from bridge.errors import ConfigError
from bridge.netguard import ConnectionGuard

log = logging.getLogger(__name__)

__all__ = ["HttpServer"]

# An idle keep-alive connection is closed after this long (aiohttp's own default is an
# hour): browsers reopen at once, and an idle connection past its head holds a slot.
KEEPALIVE_S = 15.0


class HttpServer:
    """Serves `app` on host:port (port 0 picks a free one; read it back from `port`)."""

    name = "http"

    def __init__(
        self,
        app: web.Application,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        max_connections: int = 1024,
        header_timeout_s: float = 10.0,
        keepalive_s: float = KEEPALIVE_S,
        quiet_s: float = 10.0,
    ) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._keepalive_s = keepalive_s
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self.guard = ConnectionGuard(
            "http",
            max_connections=max_connections,
            header_timeout_s=header_timeout_s,
            quiet_s=quiet_s,
        )

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the HTTP server is not started")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, keepalive_timeout=self._keepalive_s
        )
        await runner.setup()
        assert runner.server is not None
        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(
                self.guard.wrap(runner.server), self.host, self._requested_port, backlog=1024
            )
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                "http.port", f"cannot listen on {self.host}:{self._requested_port}: {exc}"
            ) from exc
        self._runner = runner
        self._server = server
        self._port = int(server.sockets[0].getsockname()[1]) if server.sockets else None
        if self._port is None:
            self._port = self._requested_port
        log.info("http listening on %s", self.url)

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.close()  # no new connections; the runner closes the open ones
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        self.guard.close()

    def health(self) -> Health:
        if self._runner is None:
            return Health("down", required=True, detail={"listening": False})
        return Health(
            "up",
            required=True,
            detail={"port": self._port, "connections": self.guard.snapshot()},
        )
