"""The generic REST connector against a real HTTP CRM on loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest

from bridge.config import build_config
from bridge.connectors import RestConnector, build_connector
from bridge.errors import ConfigError, CrmError, CrmTimeout, CrmUnavailable, DeliveryError
from bridge.models import InboundCall
from bridge.routing.rules import Rule
from bridge.routing.service import RouteService
from tests.connectors.crm_server import FIELD_MAP, TOKEN, CrmServer


@pytest.fixture
async def crm() -> AsyncIterator[CrmServer]:
    server = CrmServer()
    server.customers["+15551230001"] = {
        "customerId": "ext-42",
        "fullName": "Alice Chen",
        "labels": ["vip"],
        "accountOwner": "sue",
        "tier": "gold",
    }
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def config_for(url: str, **crm: object) -> object:
    values: dict[str, object] = {
        "connector": "rest",
        "lookup_url": f"{url}/customers?phone={{phone}}",
        "records_url": f"{url}/calls/{{call_id}}",
        "auth_header": f"Authorization: {TOKEN}",
        "field_map": FIELD_MAP,
        "timeout_ms": 2000,
    }
    values.update(crm)
    return build_config({"crm": values}, {}, runtime=False)


@pytest.fixture
async def connector(crm: CrmServer) -> AsyncIterator[RestConnector]:
    c = build_connector(config_for(crm.url))  # type: ignore[arg-type]
    assert isinstance(c, RestConnector)
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


async def test_lookup_maps_their_fields_to_a_customer(
    crm: CrmServer, connector: RestConnector
) -> None:
    customer = await connector.lookup("+15551230001")
    assert customer is not None
    assert (customer.id, customer.name, customer.tags, customer.owner) == (
        "ext-42",
        "Alice Chen",
        ("vip",),
        "sue",
    )
    assert customer.attributes == {"tier": "gold"}
    # The + is sent percent-encoded (a raw + in a query string means a space).
    assert crm.seen_paths[-1] == "/customers?phone=%2B15551230001"
    assert crm.auth_seen[-1] == TOKEN


async def test_lookup_of_nobody_is_none(connector: RestConnector) -> None:
    assert await connector.lookup("+15550000000") is None  # 200 []
    assert await connector.lookup("+15550000001") is None  # 404


async def test_lookup_answering_html_is_a_crm_error(connector: RestConnector) -> None:
    with pytest.raises(CrmError):
        await connector.lookup("+19999999999")


async def test_hostile_phone_cannot_change_the_request(
    crm: CrmServer, connector: RestConnector
) -> None:
    assert await connector.lookup("+1&phone=+15551230001#\r\nX: y") is None
    assert crm.seen_paths[-1].startswith("/customers?phone=%2B1%26phone%3D")


async def test_slow_crm_is_a_timeout(crm: CrmServer) -> None:
    c = RestConnector(config_for(crm.url, timeout_ms=100).crm)  # type: ignore[attr-defined]
    await c.start()
    crm.slow.set()
    try:
        async with asyncio.timeout(5):
            with pytest.raises(CrmTimeout):
                await c.lookup("+15551230001")
            with pytest.raises(CrmTimeout):
                await c.post_record({"call_id": "1.1"})
    finally:
        crm.release.set()
        await c.stop()


async def test_unreachable_crm_is_unavailable() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{s.getsockname()[1]}"
    c = RestConnector(config_for(url).crm, retries=1, backoff_s=0.001)  # type: ignore[attr-defined]
    await c.start()
    try:
        with pytest.raises(CrmUnavailable):
            await c.lookup("+15551230001")
        with pytest.raises(CrmUnavailable):
            await c.post_record({"call_id": "1.1"})
        assert c.health().state == "degraded"
    finally:
        await c.stop()
        s.close()


async def test_post_sends_mapped_record_with_idempotency_key(
    crm: CrmServer, connector: RestConnector
) -> None:
    record = {"call_id": "1795464246.0", "caller": "+15551230001", "talk_s": 2}
    await connector.post_record(record)
    await connector.post_record(record)  # redelivery
    assert crm.accepted == {"1795464246.0": 1}
    assert crm.records["1795464246.0"] == {
        "callRef": "1795464246.0",
        "caller": "+15551230001",
        "talk_s": 2,
    }
    assert crm.seen_paths[-1] == "/calls/1795464246.0"


async def test_post_retries_transient_failures_inside_the_connector(crm: CrmServer) -> None:
    crm.fail_first = 2
    c = RestConnector(config_for(crm.url).crm, retries=2, backoff_s=0.001)  # type: ignore[attr-defined]
    await c.start()
    try:
        await c.post_record({"call_id": "7.7"})
    finally:
        await c.stop()
    assert crm.posts == 3 and crm.accepted == {"7.7": 1}


async def test_refusal_is_a_delivery_error_and_the_secret_is_never_logged(
    crm: CrmServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    c = RestConnector(
        config_for(crm.url, auth_header="Authorization: Bearer wrong-secret-xyz").crm,  # type: ignore[attr-defined]
    )
    await c.start()
    try:
        with pytest.raises(DeliveryError) as info:
            await c.post_record({"call_id": "1.2"})
        with pytest.raises(CrmUnavailable):
            await c.lookup("+15551230001")
    finally:
        await c.stop()
    assert "wrong-secret-xyz" not in str(info.value)
    assert "wrong-secret-xyz" not in caplog.text
    assert "wrong-secret-xyz" not in repr(c)


def test_malformed_auth_header_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        RestConnector(config_for("http://127.0.0.1:1", auth_header="no colon here").crm)  # type: ignore[attr-defined]
    assert "no colon" not in str(info.value)


class _NoRules:
    async def current(self) -> Sequence[Rule]:
        return []


async def test_route_service_uses_the_rest_crm_as_its_directory(
    crm: CrmServer, connector: RestConnector
) -> None:
    config = build_config({"agi": {"budget_ms": 200}}, {}, runtime=False)
    service = RouteService(connector, _NoRules(), config)
    call = InboundCall("+15551230001", "+15551230001", "Alice", "18005550100", datetime.now(UTC))
    decision = await service.route(call)
    assert decision.customer is not None and decision.customer.id == "ext-42"
    assert not decision.degraded
    crm.slow.set()  # now the CRM hangs: the caller is not kept waiting
    async with asyncio.timeout(5):
        decision = await service.route(call)
    assert decision.degraded and decision.customer is None
    crm.release.set()
    await service.stop()
