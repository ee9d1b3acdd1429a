"""`HttpServer`: the aiohttp application served on `[http]` host/port as a Component."""

from __future__ import annotations

import logging

from aiohttp import web

from bridge.component import Health
from bridge.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["HttpServer"]


class HttpServer:
    """Serves `app` on host:port (port 0 picks a free one; read it back from `port`)."""

    name = "http"

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 8080) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

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
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                "http.port", f"cannot listen on {self.host}:{self._requested_port}: {exc}"
            ) from exc
        self._runner = runner
        addresses = runner.addresses
        self._port = int(addresses[0][1]) if addresses else self._requested_port
        log.info("http listening on %s", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def health(self) -> Health:
        if self._runner is None:
            return Health("down", required=True, detail={"listening": False})
        return Health("up", required=True, detail={"port": self._port})
