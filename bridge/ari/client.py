"""Thin ARI adapter: the event websocket (websockets) and the few REST calls (aiohttp).

Credentials travel only in an `Authorization: Basic` header, never in a URL, so no URL this
module logs or raises can carry them. websockets logs request headers at DEBUG level, so the
websocket gets its own logger pinned at INFO.

Every foreign exception is mapped here (see bridge/errors.py):
- HTTP 404, and 409 "channel not in Stasis" → `NotFound` (the caller hung up or already left)
- HTTP 401/403, or a refused websocket upgrade with those codes → `AuthError`
- other 4xx, or a reply body that is not what ARI documents → `AriProtocolError`
- 5xx, timeouts, refused or dropped connections → `LinkDown`
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from bridge.ari.protocol import (
    MAX_EVENT_CHARS,
    AriChannel,
    decode_channel_list,
    decode_variable_reply,
)
from bridge.config import AriConfig
from bridge.errors import AriProtocolError, AuthError, LinkDown, NotFound

__all__ = ["AriClient", "EventStream", "events_url"]

log = logging.getLogger(__name__)
_ws_log = logging.getLogger("bridge.ari.websocket")
_ws_log.setLevel(logging.INFO)  # DEBUG would print the Authorization header


def events_url(base: str, app: str) -> str:
    """`http://host:8088/ari` → `ws://host:8088/ari/events?app=<app>&subscribeAll=false`."""
    parts = urlsplit(base.rstrip("/"))
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    query = f"app={quote(app, safe='')}&subscribeAll=false"
    return urlunsplit((scheme, netloc, f"{parts.path}/events", query, ""))


def _strip_userinfo(base: str) -> str:
    parts = urlsplit(base.rstrip("/"))
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class EventStream:
    """One open `/ari/events` websocket; `receive()` returns each message as sent."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    async def receive(self) -> str | bytes:
        try:
            return await self._ws.recv()
        except ConnectionClosed as exc:
            raise LinkDown(f"ARI event websocket closed ({exc})") from exc
        except (WebSocketException, OSError) as exc:
            raise LinkDown(f"ARI event websocket failed: {exc}") from exc


class AriClient:
    """REST calls and the event websocket for one ARI application."""

    def __init__(
        self,
        config: AriConfig,
        *,
        rest_timeout_s: float = 5.0,
        open_timeout_s: float = 10.0,
        max_connections: int = 100,
    ) -> None:
        self._config = config
        self._base = _strip_userinfo(config.url)
        self._ws_url = events_url(self._base, config.app)
        token = base64.b64encode(f"{config.username}:{config.password}".encode()).decode()
        self._auth_header = f"Basic {token}"
        self._rest_timeout = aiohttp.ClientTimeout(total=rest_timeout_s)
        self._open_timeout_s = open_timeout_s
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    @property
    def events_url(self) -> str:
        """The websocket URL (safe to log: no credentials)."""
        return self._ws_url

    async def open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                headers={"Authorization": self._auth_header},
                timeout=self._rest_timeout,
                raise_for_status=False,
            )

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    # --- events -----------------------------------------------------------------------

    @asynccontextmanager
    async def event_stream(self) -> AsyncIterator[EventStream]:
        """Connect the websocket; raises `AuthError` or `LinkDown` if that fails."""
        try:
            ws = await connect(
                self._ws_url,
                additional_headers={"Authorization": self._auth_header},
                open_timeout=self._open_timeout_s,
                max_size=MAX_EVENT_CHARS,
                proxy=None,
                compression=None,
                logger=_ws_log,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise AuthError(
                    f"ARI refused user {self._config.username!r} (HTTP {status}):"
                    " check [ari] username and password"
                ) from exc
            raise LinkDown(f"ARI websocket {self._ws_url} answered HTTP {status}") from exc
        except (WebSocketException, OSError, TimeoutError) as exc:
            raise LinkDown(f"cannot open ARI websocket {self._ws_url}: {exc}") from exc
        try:
            yield EventStream(ws)
        finally:
            await ws.close()

    # --- REST -------------------------------------------------------------------------

    def _channel_path(self, channel_id: str, tail: str = "") -> str:
        return f"{self._base}/channels/{quote(channel_id, safe='')}{tail}"

    async def _request(
        self, method: str, url: str, *, params: dict[str, str] | None = None, what: str
    ) -> bytes:
        if self._session is None:
            raise LinkDown("ARI client is not open")
        try:
            async with self._session.request(method, url, params=params) as reply:
                body = await reply.read()
                status = reply.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise LinkDown(f"ARI {what}: {type(exc).__name__} {exc}") from exc
        if 200 <= status < 300:
            return body
        if status == 404:
            raise NotFound(f"ARI {what}: channel gone (HTTP 404)")
        if status == 409:
            raise NotFound(f"ARI {what}: channel not in Stasis (HTTP 409)")
        if status in (401, 403):
            raise AuthError(
                f"ARI {what}: HTTP {status} for user {self._config.username!r}:"
                " check [ari] username and password"
            )
        if status >= 500:
            raise LinkDown(f"ARI {what}: HTTP {status}")
        raise AriProtocolError(f"ARI {what}: HTTP {status}")

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        await self._request(
            "POST",
            self._channel_path(channel_id, "/variable"),
            params={"variable": name, "value": value},
            what=f"set {name} on {channel_id!r}",
        )

    async def continue_in_dialplan(self, channel_id: str) -> None:
        """Leave Stasis at the next priority of the dialplan, where the app was entered."""
        await self._request(
            "POST", self._channel_path(channel_id, "/continue"), what=f"continue {channel_id!r}"
        )

    async def get_variable(self, channel_id: str, name: str) -> str:
        body = await self._request(
            "GET",
            self._channel_path(channel_id, "/variable"),
            params={"variable": name},
            what=f"get {name} of {channel_id!r}",
        )
        return decode_variable_reply(body)

    async def list_channels(self) -> list[AriChannel]:
        body = await self._request("GET", f"{self._base}/channels", what="list channels")
        channels, skipped = decode_channel_list(body)
        if skipped:
            log.warning("ARI: GET /channels had %d malformed channel(s); skipped", skipped)
        return channels

    def __repr__(self) -> str:
        return f"AriClient({self._base!r}, app={self._config.app!r})"
