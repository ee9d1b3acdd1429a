"""`POST /webhooks/crm/{name}`: a CRM tells the bridge which customers changed.

The handler reads at most `[crm] webhook_max_bytes` (413 beyond), lets the connector verify
and parse the request (`webhook_changes`: pure, vendor-specific; 401 on a bad signature,
token or stale timestamp, 400 on a malformed body, 404 when that CRM has no webhook or none
is configured) and drops those customers from the cache (`CrmFeed.invalidate`): the next
call's lookup reads them again. It answers 200 quickly with a count and nothing else, as
HubSpot and Zoho expect; nothing from the request reaches the log but its size and verdict.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from bridge.clock import UnixClock
from bridge.connectors.prebuilt.base import PrebuiltConnector, WebhookRefused
from bridge.connectors.prebuilt.wiring import CrmFeed

__all__ = ["crm_webhook_handler", "setup_crm_webhook"]

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _read_bounded(request: web.Request, limit: int) -> bytes:
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
) -> Handler:
    """The aiohttp handler for `POST /webhooks/crm/{name}`; `[crm] webhook_url` is the URL
    registered in the CRM when a proxy in front of the bridge changes it (HubSpot signs it)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name", connector.vendor)
        try:
            if name != connector.vendor:
                raise WebhookRefused(404, f"the configured CRM is {connector.vendor}")
            body = await _read_bounded(request, connector.config.webhook_max_bytes)
            url = connector.config.webhook_url or str(request.url)
            ids = connector.webhook_changes(request.method, url, request.headers, body, clock())
        except WebhookRefused as refused:
            log.info("CRM webhook refused (%d): %s", refused.status, refused.reason)
            return web.json_response({"error": refused.reason}, status=refused.status)
        feed.invalidate(ids)
        log.debug("CRM webhook: %d customer(s) changed", len(ids))
        return web.json_response({"changed": len(ids)})

    return handle


def setup_crm_webhook(app: web.Application, feed: CrmFeed) -> None:
    """Mount `POST /webhooks/crm/{name}` for the prebuilt connector behind `feed`."""
    app.router.add_post("/webhooks/crm/{name}", crm_webhook_handler(feed.connector, feed))
