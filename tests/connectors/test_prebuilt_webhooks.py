"""`POST /webhooks/crm/{name}` over real HTTP: HubSpot's v3 signatures and Zoho's notification
token, computed here as the vendors' guides say; hostile requests refused, never a crash;
the changed customers leave the cache."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.config import build_config
from bridge.connectors.prebuilt.base import WebhookRefused
from bridge.connectors.prebuilt.hubspot import contact_ids, verify_signature_v3
from bridge.connectors.prebuilt.webhook import crm_webhook_handler
from bridge.connectors.prebuilt.wiring import CrmFeed, build_crm_feed
from tests.connectors.prebuilt_fixtures import (
    KNOWN,
    ZOHO_CONTACT,
    Pair,
    credentials_for,
    crm_values,
    vendor,
)

SECRET = "hubspot-app-client-secret-0000"
ZOHO_TOKEN = "TOKEN_FOR_VERIFICATION_OF_1000000068001"
NOW = 1_796_256_000.0  # the test clock, seconds


@dataclass
class Hook:
    v: Pair
    feed: CrmFeed
    client: TestClient[Any, Any]

    def url(self, name: str) -> str:
        return str(self.client.make_url(f"/webhooks/crm/{name}"))


@asynccontextmanager
async def hooked(
    name: str, secret: str | None, *, body_timeout_s: float = 10.0, **crm: Any
) -> AsyncIterator[Hook]:
    creds = credentials_for(name) | ({"webhook_secret": secret} if secret else {})
    async with vendor(name, creds=creds, **crm) as v:
        config = build_config({"crm": crm_values(name, v.fake.url, **crm)}, {}, runtime=False)
        feed = build_crm_feed(config, v.connector)
        assert feed is not None
        app = web.Application()
        app.router.add_post(
            "/webhooks/crm/{name}",
            crm_webhook_handler(
                v.connector, feed, clock=lambda: NOW, body_timeout_s=body_timeout_s
            ),
        )
        client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1", port=0))
        await client.start_server()
        try:
            yield Hook(v, feed, client)
        finally:
            await client.close()


def hubspot_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """HubSpot's v3 recipe: base64(HMAC-SHA256(secret, method + uri + body + timestamp))."""
    mac = hmac.new(
        secret.encode(), method.encode() + uri.encode() + body + timestamp.encode(), hashlib.sha256
    )
    return base64.b64encode(mac.digest()).decode()


def events(*ids: int, kind: str = "contact.propertyChange") -> bytes:
    return json.dumps(
        [
            {
                "eventId": 100 + i,
                "subscriptionId": 7,
                "portalId": 62515,
                "appId": 54321,
                "occurredAt": int(NOW * 1000),
                "subscriptionType": kind,
                "attemptNumber": 0,
                "objectId": cid,
                "propertyName": "firstname",
                "propertyValue": "Alicia",
                "changeSource": "CRM",
            }
            for i, cid in enumerate(ids)
        ]
    ).encode()


async def post_hubspot(
    hook: Hook,
    body: bytes,
    *,
    secret: str = SECRET,
    at_ms: int = int(NOW * 1000),
    signed_url: str | None = None,
) -> tuple[int, Any]:
    stamp = str(at_ms)
    url = hook.url("hubspot")
    headers = {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": hubspot_signature(secret, "POST", signed_url or url, body, stamp),
        "X-HubSpot-Request-Timestamp": stamp,
    }
    async with hook.client.session.post(url, data=body, headers=headers) as r:
        return r.status, await r.json()


async def test_a_signed_hubspot_event_drops_the_contact_from_the_cache() -> None:
    async with hooked("hubspot", SECRET) as hook:
        cache = hook.feed.directory
        assert (await cache.lookup(KNOWN)) is not None
        await cache.card("101")
        hook.v.fake.contacts["101"]["properties"]["firstname"] = "Alicia"
        status, answer = await post_hubspot(hook, events(101, 555))
        assert (status, answer) == (200, {"changed": 2})
        assert KNOWN not in cache.lookups.items and "101" not in cache.cards.items
        found = await cache.lookup(KNOWN)
        assert found is not None and found.name == "Alicia Chen"
        assert hook.feed.health().detail["webhook_ids"] == 2


async def test_hubspot_merge_and_other_objects_events() -> None:
    async with hooked("hubspot", SECRET) as hook:
        body = json.dumps(
            [
                {
                    "subscriptionType": "contact.merge",
                    "objectId": 101,
                    "primaryObjectId": 101,
                    "mergedObjectIds": [102, 103],
                    "newObjectId": 104,
                },
                {"subscriptionType": "deal.creation", "objectId": 9},
                {"subscriptionType": "contact.deletion", "objectId": "not-a-number"},
            ]
        ).encode()
        assert await post_hubspot(hook, body) == (200, {"changed": 4})


async def test_hubspot_signs_the_url_registered_behind_a_proxy() -> None:
    public = "https://bridge.example/webhooks/crm/hubspot"
    async with hooked("hubspot", SECRET, webhook_url=public) as hook:
        assert (await post_hubspot(hook, events(101), signed_url=public))[0] == 200
        assert (await post_hubspot(hook, events(101)))[0] == 401  # signed for another URL


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("wrong secret", 401),
        ("stale", 401),
        ("future", 401),
        ("no headers", 401),
        ("garbage headers", 401),
        ("malformed json", 400),
        ("bad utf-8", 400),
        ("not a list", 400),
        ("oversized", 413),
        ("oversized chunked", 413),
        ("other crm", 404),
    ],
)
async def test_hostile_hubspot_requests_are_refused(case: str, status: int) -> None:
    async with hooked("hubspot", SECRET, webhook_max_bytes=4096) as hook:
        await hook.feed.directory.lookup(KNOWN)
        now_ms = int(NOW * 1000)
        session = hook.client.session
        if case == "wrong secret":
            got = await post_hubspot(hook, events(101), secret="guess")
        elif case == "stale":
            got = await post_hubspot(hook, events(101), at_ms=now_ms - 5 * 60 * 1000 - 1)
        elif case == "future":
            got = await post_hubspot(hook, events(101), at_ms=now_ms + 10 * 60 * 1000)
        elif case == "no headers":
            async with session.post(hook.url("hubspot"), data=events(101)) as r:
                got = (r.status, await r.json())
        elif case == "garbage headers":
            headers = {"X-HubSpot-Signature-v3": "ünicode==", "X-HubSpot-Request-Timestamp": "1e9"}
            async with session.post(hook.url("hubspot"), data=b"[]", headers=headers) as r:
                got = (r.status, await r.json())
        elif case == "malformed json":
            got = await post_hubspot(hook, b'[{"objectId": 101,')
        elif case == "bad utf-8":
            got = await post_hubspot(hook, b'[{"objectId": "\xff\xfe"}]')
        elif case == "not a list":
            got = await post_hubspot(hook, b'{"objectId": 101}')
        elif case == "oversized":
            got = await post_hubspot(hook, b"[" + b" " * 5000 + b"]")
        elif case == "oversized chunked":

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(10):
                    yield b" " * 1000

            async with session.post(hook.url("hubspot"), data=chunks()) as r:
                got = (r.status, await r.json())
        else:
            async with session.post(hook.url("zoho"), data=events(101)) as r:
                got = (r.status, await r.json())
        assert got[0] == status and "error" in got[1]
        assert KNOWN in hook.feed.directory.lookups.items  # nothing was invalidated


async def test_a_replayed_hubspot_request_changes_nothing() -> None:
    """A captured signed request posted again within its 5 minutes must not evict at will."""
    async with hooked("hubspot", SECRET) as hook:
        cache = hook.feed.directory
        await cache.lookup(KNOWN)
        assert await post_hubspot(hook, events(101)) == (200, {"changed": 1})
        await cache.lookup(KNOWN)  # read again, cached again
        epoch = cache.epoch
        for _ in range(3):
            assert await post_hubspot(hook, events(101)) == (200, {"changed": 0})
        assert KNOWN in cache.lookups.items and cache.epoch == epoch
        assert hook.feed.health().detail["webhook_ids"] == 1
        assert (await post_hubspot(hook, events(101, 102)))[1] == {"changed": 2}  # a new batch


async def test_a_zoho_notification_replayed_changes_nothing() -> None:
    async with hooked("zoho", ZOHO_TOKEN) as hook:
        cache = hook.feed.directory
        note = zoho_notification(ZOHO_TOKEN, ZOHO_CONTACT)
        async with hook.client.session.post(hook.url("zoho"), json=note) as r:
            assert (r.status, await r.json()) == (200, {"changed": 1})
        await cache.lookup(KNOWN)
        async with hook.client.session.post(hook.url("zoho"), json=note) as r:
            assert (r.status, await r.json()) == (200, {"changed": 0})
        assert KNOWN in cache.lookups.items


async def test_a_batch_about_no_contact_leaves_the_cache_alone() -> None:
    """Deal events name no contact: unknown numbers stay cached and loads in flight may
    still store their answers (a stream of such batches must not empty the cache)."""
    async with hooked("hubspot", SECRET) as hook:
        cache = hook.feed.directory
        unknown = "+15559990000"
        assert await cache.lookup(unknown) is None
        epoch = cache.epoch
        assert await post_hubspot(hook, events(9, kind="deal.creation")) == (200, {"changed": 0})
        assert unknown in cache.lookups.items and cache.epoch == epoch


async def test_a_trickled_body_is_cut_with_408() -> None:
    """A body that never completes must not hold the connection (and the handler) for ever."""
    async with hooked("hubspot", SECRET, body_timeout_s=0.05) as hook:
        await hook.feed.directory.lookup(KNOWN)
        server = hook.client.server
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            writer.write(
                b"POST /webhooks/crm/hubspot HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n[{"
            )
            await writer.drain()
            async with asyncio.timeout(30):  # fails, rather than hangs, without the cut
                status_line = await reader.readline()
        finally:
            writer.close()
        assert status_line.split()[1] == b"408"
        assert KNOWN in hook.feed.directory.lookups.items


async def test_webhooks_are_off_without_a_secret() -> None:
    async with hooked("hubspot", None) as hook:
        status, answer = await post_hubspot(hook, events(101))
        assert status == 404 and "webhook_secret" in answer["error"]


def zoho_notification(token: str, *ids: str, module: str = "Contacts") -> dict[str, Any]:
    return {
        "server_time": int(NOW * 1000),
        "query_params": {},
        "module": module,
        "resource_uri": "https://www.zohoapis.com/crm/v2/Contacts",
        "ids": list(ids),
        "affected_fields": [],
        "operation": "update",
        "channel_id": "1000000068001",
        "token": token,
    }


async def test_zoho_notifications_with_the_token_drop_the_contacts() -> None:
    async with hooked("zoho", ZOHO_TOKEN) as hook:
        cache = hook.feed.directory
        await cache.lookup(KNOWN)
        session = hook.client.session
        url = hook.url("zoho")
        async with session.post(url, json=zoho_notification("guess", ZOHO_CONTACT)) as r:
            assert r.status == 401
        async with session.post(url, json={"ids": [ZOHO_CONTACT]}) as r:
            assert r.status == 401
        async with session.post(url, data=b"{not json") as r:
            assert r.status == 400
        async with session.post(url, json=[1, 2]) as r:
            assert r.status == 400
        assert KNOWN in cache.lookups.items
        leads = zoho_notification(ZOHO_TOKEN, "4150868000000999999", module="Leads")
        async with session.post(url, json=leads) as r:
            assert (r.status, await r.json()) == (200, {"changed": 0})
        note = zoho_notification(ZOHO_TOKEN, ZOHO_CONTACT, "../x", "")
        async with session.post(url, json=note) as r:
            assert (r.status, await r.json()) == (200, {"changed": 1})
        assert KNOWN not in cache.lookups.items


@pytest.mark.parametrize("name", ["salesforce", "odoo", "suitecrm"])
async def test_polling_only_crms_answer_404_and_say_why(name: str) -> None:
    async with (
        hooked(name, "some-secret") as hook,
        hook.client.session.post(hook.url(name), data=b"{}") as r,
    ):
        answer = await r.json()
        assert r.status == 404 and "polled" in answer["error"]


def test_hubspot_signs_the_uri_with_the_guides_escapes_decoded() -> None:
    url = "https://bridge.example/webhooks/crm/hubspot?portal=62515&at=a%3Ab%2Fc%40d"
    stamp = str(int(NOW * 1000))
    body = events(101)
    decoded = "https://bridge.example/webhooks/crm/hubspot?portal=62515&at=a:b/c@d"
    headers = {
        "X-HubSpot-Signature-v3": hubspot_signature(SECRET, "POST", decoded, body, stamp),
        "X-HubSpot-Request-Timestamp": stamp,
    }
    verify_signature_v3(SECRET, "POST", url, headers, body, NOW)
    assert contact_ids(json.loads(body)) == ["101"]
    with pytest.raises(WebhookRefused) as refused:
        verify_signature_v3(SECRET, "POST", url, headers, body + b" ", NOW)
    assert refused.value.status == 401
