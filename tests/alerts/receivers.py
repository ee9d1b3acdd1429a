"""Loopback receivers for alerts: a webhook (aiohttp) and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import json
import socket
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller


class WebhookReceiver:
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app)
        self.url = ""

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def close(self) -> None:
        await self._runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        self.received.append(json.loads(await request.read()))
        self.arrived.set()
        return web.Response(status=self.status)


class _Handler:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def _free_port() -> int:
    # aiosmtpd's controller checks readiness by connecting to its port, so it cannot take
    # port 0: ask the kernel for a free ephemeral port first.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpReceiver:
    def __init__(self) -> None:
        self.handler = _Handler()
        self.port = _free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list[Message]:
        return self.handler.messages


class SmsGateway:
    """A fake SMS provider on loopback answering like the real APIs: Twilio's Messages
    resource (`/2010-04-01/Accounts/{sid}/Messages.json`, Basic auth, 201), Vonage's SMS API
    (`/sms/json`, 200 with `messages[].status`), and a generic `/send` taking JSON."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self.refuse = False
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._twilio)
        app.router.add_post("/sms/json", self._vonage)
        app.router.add_post("/send", self._generic)
        self._runner = web.AppRunner(app)
        self.base = ""

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        await self._runner.cleanup()

    def texts(self) -> list[str]:
        return [str(m["text"]) for m in self.received]

    def _note(self, provider: str, text: str, fields: dict[str, Any]) -> None:
        self.received.append({"provider": provider, "text": text, **fields})
        self.arrived.set()

    async def _twilio(self, request: web.Request) -> web.Response:
        form = await request.post()
        self._note(
            "twilio",
            str(form["Body"]),
            {
                "sid": request.match_info["sid"],
                "to": form["To"],
                "from": form["From"],
                "auth": request.headers.get("Authorization", ""),
            },
        )
        if self.refuse:
            return web.json_response({"code": 21211, "status": 400}, status=400)
        return web.json_response({"sid": "SM1", "status": "queued"}, status=201)

    async def _vonage(self, request: web.Request) -> web.Response:
        form = await request.post()
        self._note(
            "vonage",
            str(form["text"]),
            {k: form[k] for k in ("api_key", "api_secret", "from", "to")},
        )
        status = "4" if self.refuse else "0"  # 4: invalid credentials, still HTTP 200
        return web.json_response({"message-count": "1", "messages": [{"status": status}]})

    async def _generic(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self._note(
            "generic",
            body["text"],
            {"to": body["to"], "from": body["from"], "auth": request.headers.get("X-Api-Key")},
        )
        return web.Response(status=503 if self.refuse else 202)
