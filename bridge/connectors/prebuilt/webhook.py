"""`POST /webhooks/crm/{name}`: a CRM tells the bridge which customers changed.

The handler reads at most `[crm] webhook_max_bytes` (413 beyond), lets the connector verify
and parse the request (`webhook_changes`: pure, vendor-specific; 401 on a bad signature,
token or stale timestamp, 400 on a malformed body, 404 when that CRM has no webhook or none
is configured) and drops those customers from the cache (`CrmFeed.invalidate`): the next
call's lookup reads them again. It answers 200 quickly with a count and nothing else, as
HubSpot and Zoho expect; nothing from the request reaches the log but its size and verdict.

The endpoint is open to anyone who can reach it, so a body not received within
`BODY_TIMEOUT_S` is 408 (a trickled body would otherwise hold a connection for ever, and
enough of them every connection the agents' pages need), and a verified request posted again
(`ReplayGuard`) is answered 200 with nothing changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from bridge.clock import UnixClock
from bridge.connectors.prebuilt.base import PrebuiltConnector, WebhookRefused
from bridge.connectors.prebuilt.replay_guard import ReplayGuard
from bridge.connectors.prebuilt.wiring import CrmFeed

__all__ = ["crm_webhook_handler", "setup_crm_webhook"]

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BODY_TIMEOUT_S = 10.0  # as `[http] header_timeout_s`: a CRM posts its small body at once


async def _read_bounded(request: web.Request, limit: int, within_s: float) -> bytes:
    try:
        async with asyncio.timeout(within_s):
            return await _read_at_most(request, limit)
    except TimeoutError:
        raise WebhookRefused(408, f"the body did not arrive within {within_s:g} s") from None


async def _read_at_most(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise WebhookRefused(413, f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise WebhookRefused(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def crm_webhook_handler(
    connector: PrebuiltConnector,
    feed: CrmFeed,
    *,
    clock: UnixClock = time.time,
    body_timeout_s: float = BODY_TIMEOUT_S,
    replays: ReplayGuard | None = None,
) -> Handler:
    """The aiohttp handler for `POST /webhooks/crm/{name}`; `[crm] webhook_url` is the URL
    registered in the CRM when a proxy in front of the bridge changes it (HubSpot signs it)."""
    seen = replays if replays is not None else ReplayGuard()

    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name", connector.vendor)
        try:
            if name != connector.vendor:
                raise WebhookRefused(404, f"the configured CRM is {connector.vendor}")
            limit = connector.config.webhook_max_bytes
            body = await _read_bounded(request, limit, body_timeout_s)
            url = connector.config.webhook_url or str(request.url)
            ids = connector.webhook_changes(request.method, url, request.headers, body, clock())
        except WebhookRefused as refused:
            log.info("CRM webhook refused (%d): %s", refused.status, refused.reason)
            return web.json_response({"error": refused.reason}, status=refused.status)
        if not seen.first_time(body):
            log.info("CRM webhook: a verified request posted again; nothing changed")
            return web.json_response({"changed": 0})
        feed.invalidate(ids)
        log.debug("CRM webhook: %d customer(s) changed", len(ids))
        return web.json_response({"changed": len(ids)})

    return handle


def setup_crm_webhook(app: web.Application, feed: CrmFeed) -> None:
    """Mount `POST /webhooks/crm/{name}` for the prebuilt connector behind `feed`."""
    app.router.add_post("/webhooks/crm/{name}", crm_webhook_handler(feed.connector, feed))
