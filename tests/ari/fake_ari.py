"""A fake Asterisk ARI on loopback: the event websocket and the REST calls the app makes.

It keeps a table of channels parked in Stasis; `continue` removes a channel from it (and
sends `StasisEnd`, as Asterisk does), a request for an unknown channel answers 404. Every
REST call is logged as `"POST /channels/<id>/variable NAME=value"` (the `_rest` notation
of tests/fixtures/asterisk-traces/*/ari.jsonl) with its status.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

USERNAME = "bridge"
PASSWORD = "bridgesecret"  # lab-config/ari.conf


@dataclass
class RestCall:
    line: str
    status: int
    channel_id: str = ""
    action: str = ""  # variable | continue | get_variable | list
    variable: str = ""
    value: str = ""


def channel_json(
    channel_id: str,
    *,
    number: str = "+15551230001",
    name: str = "Alice VIP",
    exten: str = "18005550100",
    app: str = "crm-bridge",
    app_name: str = "Stasis",
) -> dict[str, Any]:
    return {
        "id": channel_id,
        "name": f"PJSIP/trunk-{channel_id}",
        "state": "Up",
        "protocol_id": "",
        "caller": {"name": name, "number": number},
        "connected": {"name": "", "number": ""},
        "accountcode": "",
        "dialplan": {
            "context": "inbound-ari",
            "exten": exten,
            "priority": 3,
            "app_name": app_name,
            "app_data": app,
        },
        "creationtime": "2026-11-23T20:04:49.259+0000",
        "language": "en",
    }


def stasis_start(channel: dict[str, Any], app: str = "crm-bridge") -> dict[str, Any]:
    return {
        "type": "StasisStart",
        "timestamp": "2026-11-23T20:04:49.280+0000",
        "args": [],
        "channel": channel,
        "asterisk_id": "02:fc:00:00:00:01",
        "application": app,
    }


@dataclass
class FakeAri:
    app: str = "crm-bridge"
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    linkedids: dict[str, str] = field(default_factory=dict)
    calls: list[RestCall] = field(default_factory=list)
    # (action, channel_id) → statuses to answer first, one per request
    failures: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    refuse_websocket: int | None = None  # HTTP status for upgrades, e.g. 503 during a cut
    send_stasis_end: bool = True  # after a continue, as Asterisk does
    echo_varset: bool = True  # ChannelVarset after a variable is set, as Asterisk does
    ws_queries: list[dict[str, str]] = field(default_factory=list)
    ws_auth: list[str] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    on_rest: Callable[[RestCall], object] | None = None

    def __post_init__(self) -> None:
        self._changed = asyncio.Condition()
        self._ws: web.WebSocketResponse | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self._auth = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(middlewares=[self._check_auth])
        app.router.add_get("/ari/events", self._events)
        app.router.add_get("/ari/channels", self._list)
        app.router.add_post("/ari/channels/{id}/variable", self._set_variable)
        app.router.add_get("/ari/channels/{id}/variable", self._get_variable)
        app.router.add_post("/ari/channels/{id}/continue", self._continue)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ari"

    # --- driving ----------------------------------------------------------------------

    async def send(self, message: str | bytes | dict[str, Any]) -> None:
        """Send one websocket message as is (dicts as JSON)."""
        assert self._ws is not None, "no event websocket connected"
        if isinstance(message, dict):
            await self._ws.send_str(json.dumps(message, ensure_ascii=False))
        elif isinstance(message, bytes):
            await self._ws.send_bytes(message)
        else:
            await self._ws.send_str(message)

    def park(self, channel: dict[str, Any], linkedid: str | None = None) -> None:
        self.channels[channel["id"]] = channel
        if linkedid is not None:
            self.linkedids[channel["id"]] = linkedid

    async def cut(self) -> None:
        """Drop the event websocket (as a restarted Asterisk or a broken network would)."""
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        await self._notify()

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_connected(self, count: int = 1) -> None:
        await self.wait_for(lambda: self.connections >= count and self._ws is not None)

    def lists(self) -> int:
        return sum(1 for c in self.calls if c.action == "list")

    def continued(self) -> list[str]:
        return [c.channel_id for c in self.calls if c.action == "continue" and c.status == 204]

    def calls_for(self, channel_id: str) -> list[RestCall]:
        return [c for c in self.calls if c.channel_id == channel_id]

    def variables_of(self, channel_id: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for call in self.calls_for(channel_id):
            if call.action == "variable":
                out[call.variable] = call.value
        return out

    # --- server -----------------------------------------------------------------------

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    @web.middleware
    async def _check_auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != self._auth:
            return web.json_response({"message": "Authentication required"}, status=401)
        if "api_key" in request.query:
            return web.json_response({"message": "credentials in the URL"}, status=400)
        response: web.StreamResponse = await handler(request)
        return response

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_websocket is not None:
            return web.Response(status=self.refuse_websocket)
        self.ws_queries.append(dict(request.query))
        self.ws_auth.append(request.headers.get("Authorization", ""))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        self._sockets.add(ws)
        self.connections += 1
        await self._notify()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:  # pragma: no cover
                    break
        finally:
            self._sockets.discard(ws)
            if self._ws is ws:
                self._ws = None
            await self._notify()
        return ws

    async def _push(self, event: dict[str, Any]) -> None:
        """An event Asterisk would send as a side effect; lost if the link is down."""
        ws = self._ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(ConnectionError):  # closed meanwhile
                await ws.send_str(json.dumps(event, ensure_ascii=False))

    async def _log(self, call: RestCall) -> int:
        planned = self.failures.get((call.action, call.channel_id))
        if planned:
            call.status = planned.pop(0)
        self.calls.append(call)
        if self.on_rest is not None:
            self.on_rest(call)
        await self._notify()
        return call.status

    async def _list(self, request: web.Request) -> web.StreamResponse:
        listed = list(self.channels.values())
        status = await self._log(RestCall("GET /channels", 200, "", "list"))
        if status != 200:
            return web.Response(status=status)
        return web.json_response(listed)

    async def _set_variable(self, request: web.Request) -> web.StreamResponse:
        channel_id = request.match_info["id"]
        name = request.query.get("variable", "")
        value = request.query.get("value", "")
        known = channel_id in self.channels
        status = await self._log(
            RestCall(
                f"POST /channels/{channel_id}/variable {name}={value}",
                204 if known else 404,
                channel_id,
                "variable",
                name,
                value,
            )
        )
        if status == 204 and self.echo_varset:
            await self._push(
                {
                    "variable": name,
                    "value": value,
                    "type": "ChannelVarset",
                    "channel": self.channels[channel_id],
                    "application": self.app,
                }
            )
        return web.Response(status=status)

    async def _get_variable(self, request: web.Request) -> web.StreamResponse:
        channel_id = request.match_info["id"]
        name = request.query.get("variable", "")
        known = channel_id in self.channels
        status = await self._log(
            RestCall(
                f"GET /channels/{channel_id}/variable {name}",
                200 if known else 404,
                channel_id,
                "get_variable",
            )
        )
        if status != 200:
            return web.Response(status=status)
        if name == "CHANNEL(linkedid)":
            return web.json_response({"value": self.linkedids.get(channel_id, channel_id)})
        return web.json_response({"value": ""})

    async def _continue(self, request: web.Request) -> web.StreamResponse:
        channel_id = request.match_info["id"]
        known = channel_id in self.channels
        status = await self._log(
            RestCall(
                f"POST /channels/{channel_id}/continue",
                204 if known else 404,
                channel_id,
                "continue",
            )
        )
        if status == 204:
            channel = self.channels.pop(channel_id)
            if self.send_stasis_end:
                await self._push({"type": "StasisEnd", "channel": channel, "application": self.app})
        return web.Response(status=status)
