"""A small external CRM over HTTP (aiohttp) on loopback, for connector and outbox tests.

It speaks *its own* field names (customerId, fullName, labels, accountOwner; callRef for
call ids) so the tests exercise `[crm] field_map`, fails the first `fail_first` record posts
with 503, can be made slow, and counts what it accepted per Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

from aiohttp import web

TOKEN = "Bearer s3cr3t-token-value"
FIELD_MAP = {
    "id": "customerId",
    "name": "fullName",
    "tags": "labels",
    "owner": "accountOwner",
    "call_id": "callRef",
}


class CrmServer:
    def __init__(self, *, fail_first: int = 0, always_fail: bool = False) -> None:
        self.fail_first = fail_first
        self.always_fail = always_fail
        self.slow = asyncio.Event()  # set: requests hang until `release` is set
        self.release = asyncio.Event()
        self.customers: dict[str, dict[str, Any]] = {}
        self.posts = 0
        self.accepted: Counter[str] = Counter()
        self.records: dict[str, dict[str, Any]] = {}
        self.seen_paths: list[str] = []
        self.auth_seen: list[str | None] = []
        self.accepted_event = asyncio.Event()
        app = web.Application()
        app.router.add_get("/customers", self._lookup)
        app.router.add_post("/calls/{call_id}", self._post)
        app.router.add_post("/customers", self._create)
        self._runner = web.AppRunner(app)
        self.url = ""

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        self.release.set()
        await self._runner.cleanup()

    async def _gate(self, request: web.Request) -> web.Response | None:
        self.auth_seen.append(request.headers.get("Authorization"))
        self.seen_paths.append(request.path_qs)
        if self.slow.is_set():
            await self.release.wait()
        if request.headers.get("Authorization") != TOKEN:
            return web.json_response({"error": "unauthorized"}, status=401)
        return None

    async def _lookup(self, request: web.Request) -> web.Response:
        if (refused := await self._gate(request)) is not None:
            return refused
        phone = request.query.get("phone", "")
        if phone == "+19999999999":
            return web.Response(text="<html>oops</html>", content_type="text/html")
        if phone not in self.customers:
            return (
                web.json_response([], status=200)
                if phone.endswith("0")
                else web.Response(status=404)
            )
        return web.json_response({"data": [self.customers[phone]]})

    async def _post(self, request: web.Request) -> web.Response:
        if (refused := await self._gate(request)) is not None:
            return refused
        self.posts += 1
        if self.always_fail or self.posts <= self.fail_first:
            return web.json_response({"error": "try later"}, status=503)
        key = request.headers.get("Idempotency-Key", "")
        body = json.loads(await request.read())
        if key in self.records:
            # Idempotent: a repeat of the same key updates, never duplicates.
            self.records[key] = body
            return web.json_response({"status": "duplicate"}, status=200)
        self.accepted[key] += 1
        self.records[key] = body
        self.accepted_event.set()
        return web.json_response({"status": "created"}, status=201)

    async def _create(self, request: web.Request) -> web.Response:
        """Create customer: 409 when the phone is known, else 201 in their own field names."""
        if (refused := await self._gate(request)) is not None:
            return refused
        body = json.loads(await request.read())
        phone = body.get("phone", "")
        if not isinstance(body.get("name"), str) or not body["name"]:
            return web.json_response({"error": "name required"}, status=422)
        if phone in self.customers:
            return web.json_response({"error": "exists"}, status=409)
        created = {
            "customerId": f"ext-{len(self.customers) + 100}",
            "fullName": body["name"],
            "labels": body.get("tags", []),
        }
        self.customers[phone] = created
        return web.json_response(created, status=201)
