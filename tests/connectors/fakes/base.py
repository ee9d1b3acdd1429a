"""What every fake vendor API shares: a loopback aiohttp server, request validation that
records violations (the tests assert there are none), and hostile answers on demand.

`hostile` (set by a test) turns every API answer (not token requests) into one of:
html, huge, badutf8, wrongtype, slow (hangs until `release`), 429 (Retry-After: 120), 500.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeVendor:
    token_paths: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.violations: list[str] = []
        self.hostile = ""
        self.release = asyncio.Event()
        self.api_requests = 0
        self.seen: list[tuple[str, str]] = []
        self.app = web.Application(middlewares=[self._middleware])
        self.routes(self.app.router)
        self._runner = web.AppRunner(self.app)
        self.url = ""

    def routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    def violation(self, text: str) -> web.Response:
        self.violations.append(text)
        return web.json_response({"violation": text}, status=400)

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        self.release.set()
        await self._runner.cleanup()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.seen.append((request.method, request.path))
        if request.path in self.token_paths:
            return await handler(request)
        self.api_requests += 1
        mode = self.hostile
        if mode == "html":
            return web.Response(text="<html><body>Log in</body></html>", content_type="text/html")
        if mode == "huge":
            return web.Response(
                body=b'{"results": [' + b" " * (3 << 20) + b"]}", content_type="application/json"
            )
        if mode == "badutf8":
            return web.Response(body=b'{"results": ["\xff\xfe"]}', content_type="application/json")
        if mode == "slow":
            await self.release.wait()
        if mode == "429":
            return web.json_response(
                {"message": "slow down"}, status=429, headers={"Retry-After": "120"}
            )
        if mode == "500":
            return web.json_response({"message": "oops"}, status=500)
        answer = await handler(request)
        if mode == "wrongtype" and isinstance(answer, web.Response):
            return web.json_response(self.wrong_type(), status=answer.status)
        return answer

    def wrong_type(self) -> Any:
        return ["not", "an", "object"]
