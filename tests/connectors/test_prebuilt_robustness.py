"""What every prebuilt connector does when the CRM misbehaves: hostile answers become our
errors, a slow CRM never holds a call past the route budget, 429 + Retry-After is honoured
without sending more, tokens are refreshed, and no secret reaches a log or /healthz."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.config import build_config
from bridge.connectors.prebuilt.credentials import load_credentials
from bridge.connectors.prebuilt.http import parse_retry_after
from bridge.errors import (
    ConfigError,
    CrmError,
    CrmRateLimited,
    CrmRefused,
    CrmTimeout,
    DeliveryError,
)
from bridge.models import InboundCall
from bridge.routing.service import RouteService
from tests.connectors.prebuilt_fixtures import KNOWN, VENDORS, credentials_for, vendor
from tests.connectors.test_prebuilt_connectors import RECORD
from tests.connectors.test_rest_connector import _NoRules


@pytest.mark.parametrize("mode", ["html", "huge", "badutf8", "wrongtype", "500"])
@pytest.mark.parametrize("name", VENDORS)
async def test_hostile_answers_become_crm_errors(name: str, mode: str) -> None:
    async with vendor(name) as v:
        v.fake.hostile = mode
        with pytest.raises(CrmError):
            await v.connector.lookup(KNOWN)
        with pytest.raises(DeliveryError):
            await v.connector.post_record(RECORD | {"customer_id": "42"})
        assert v.connector.health().state == "degraded"
        v.fake.hostile = ""
        assert await v.connector.lookup(KNOWN) is not None  # and it recovers
        assert v.connector.health().state == "up"


@pytest.mark.parametrize("name", VENDORS)
async def test_a_hanging_crm_never_holds_the_call_past_the_route_budget(name: str) -> None:
    async with vendor(name) as v:
        config = build_config({"agi": {"budget_ms": 200}}, {}, runtime=False)
        service = RouteService(v.connector, _NoRules(), config)
        call = InboundCall(KNOWN, KNOWN, "Alice", "18005550100", datetime.now(UTC))
        assert not (await service.route(call)).degraded
        v.fake.hostile = "slow"
        async with asyncio.timeout(10):
            decision = await service.route(call)
        assert decision.degraded and decision.customer is None
        v.fake.release.set()
        await service.stop()


@pytest.mark.parametrize("name", VENDORS)
async def test_per_request_timeout_is_crm_timeout(name: str) -> None:
    # The slow fake hangs until released, so the deadline can be generous: a loaded machine
    # must not time out the first lookup (log in, fetch the token) that has to succeed.
    async with vendor(name, timeout_ms=2000) as v:
        await v.connector.lookup(KNOWN)  # log in / fetch the token first
        v.fake.hostile = "slow"
        with pytest.raises(CrmTimeout):
            await v.connector.lookup(KNOWN)


@pytest.mark.parametrize("name", VENDORS)
async def test_429_retry_after_is_honoured_without_sending_more(name: str) -> None:
    async with vendor(name) as v:
        await v.connector.lookup(KNOWN)
        v.fake.hostile = "429"
        with pytest.raises(CrmRateLimited) as caught:
            await v.connector.lookup(KNOWN)
        assert 100 < caught.value.retry_after_s <= 120
        sent = v.fake.api_requests
        v.fake.hostile = ""
        with pytest.raises(CrmRateLimited):
            await v.connector.lookup(KNOWN)  # fails fast: the call takes the default route
        with pytest.raises(DeliveryError):
            await v.connector.post_record(RECORD)  # the outbox retries later
        assert v.fake.api_requests == sent
        assert v.connector.health().detail["rate_limited_s"] > 100


@pytest.mark.parametrize("name", VENDORS)
async def test_bad_credentials_say_so(name: str) -> None:
    creds = {k: v + "-wrong" for k, v in credentials_for(name).items()}
    async with vendor(name, creds=creds) as v:
        with pytest.raises(CrmRefused) as caught:
            await v.connector.lookup(KNOWN)
        assert caught.value.kind == "credentials"


async def test_hubspot_missing_scope_is_named() -> None:
    async with vendor("hubspot") as v:
        v.fake.scopes_ok = False
        with pytest.raises(CrmRefused) as caught:
            await v.connector.lookup(KNOWN)
        assert caught.value.kind == "scope" and "MISSING_SCOPES" in str(caught.value)


async def test_salesforce_unknown_field_is_named() -> None:
    async with vendor("salesforce") as v:
        v.fake.tasks["00T000000000001AAA"] = {"CallObject": "x"}
        from tests.connectors.fakes import salesforce as sf

        sf.TASK_FIELDS.discard("CallDisposition")
        try:
            with pytest.raises(DeliveryError, match="INVALID_FIELD"):
                await v.connector.post_record(RECORD)
        finally:
            sf.TASK_FIELDS.add("CallDisposition")


async def test_salesforce_token_is_shared_and_renewed_after_invalid_session() -> None:
    async with vendor("salesforce") as v:
        await asyncio.gather(*(v.connector.lookup(KNOWN) for _ in range(5)))
        assert v.fake.token_requests == 1  # one fetch for a burst of lookups
        v.fake.expire_tokens()  # the org's session timeout passed
        assert await v.connector.lookup(KNOWN) is not None
        assert v.fake.token_requests == 2


async def test_odoo_logs_in_once_and_again_after_access_denied() -> None:
    async with vendor("odoo") as v:
        await v.connector.lookup(KNOWN)
        await v.connector.lookup(KNOWN)
        assert v.fake.logins == 1


@pytest.mark.parametrize("name", VENDORS)
async def test_no_secret_in_logs_health_or_errors(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with vendor(name) as v:
        await v.connector.lookup(KNOWN)
        await v.connector.post_record(RECORD)
        for mode in ("500", "429"):
            v.fake.hostile = mode
            with pytest.raises(CrmError) as caught:
                await v.connector.lookup("+15551230002")
            logging.getLogger("test").error("failed: %s %r", caught.value, v.connector)
        text = (
            caplog.text
            + repr(v.connector)
            + str(v.connector.health())
            + repr(v.connector.credentials)
        )
    for secret in v.secrets:
        if "@" not in secret:  # a login name is not a secret
            assert secret not in text


def test_retry_after_in_seconds_or_http_date() -> None:
    assert parse_retry_after("120") == 120
    assert parse_retry_after(None) == 1.0
    assert parse_retry_after("soon") == 1.0
    assert parse_retry_after("nan") == 1.0
    assert parse_retry_after("99999999") == 3600
    assert parse_retry_after("-5") == 0
    assert parse_retry_after("Wed, 02 Dec 2026 06:42:03 GMT", now=1796193723.0 - 120) == 120


def _crm(path: Path) -> object:
    return build_config(
        {"crm": {"connector": "hubspot", "credentials_file": str(path)}}, {}, runtime=False
    ).crm


def test_credentials_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "crm.secrets"
    path.write_text('token = "pat-secret-value"\n')
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600") as caught:
        load_credentials(_crm(path), {})  # type: ignore[arg-type]
    assert "pat-secret-value" not in str(caught.value)
    os.chmod(path, 0o600)
    assert load_credentials(_crm(path), {}).get("token") == "pat-secret-value"  # type: ignore[arg-type]
    env = {"CRM_BRIDGE_CRM_TOKEN": "from-env"}
    assert load_credentials(_crm(path), env).get("token") == "from-env"  # type: ignore[arg-type]


def test_credentials_file_refuses_unknown_names_and_bad_toml_without_echoing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "crm.secrets"
    path.write_text('token = "abc\n')
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError) as caught:
        load_credentials(_crm(path), {})  # type: ignore[arg-type]
    assert "abc" not in str(caught.value)
    path.write_text('tokn = "x"\n')
    with pytest.raises(ConfigError, match="unknown name"):
        load_credentials(_crm(path), {})  # type: ignore[arg-type]


def test_a_connector_without_its_credentials_names_what_is_missing() -> None:
    config = build_config(
        {"crm": {"connector": "salesforce", "base_url": "https://x.my.salesforce.com"}},
        {},
        runtime=False,
    )
    from bridge.connectors import build_connector

    with pytest.raises(ConfigError, match="client_id"):
        build_connector(config)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"connector": "zendesk"}, "crm.connector"),
        ({"connector": "hubspot", "base_url": "ftp://x"}, "crm.base_url"),
        ({"connector": "hubspot", "customer_url": "https://x/contacts"}, "crm.customer_url"),
        ({"connector": "odoo"}, "crm.database"),
        ({"connector": "hubspot", "poll_s": -1.0}, "crm.poll_s"),
    ],
)
def test_config_refuses_bad_crm_values(values: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({"crm": values}, {}, runtime=False)
    assert caught.value.key == key


async def test_tokens_are_renewed_before_they_expire_and_shared() -> None:
    from bridge.connectors.prebuilt.oauth import TokenCache

    now = [1000.0]
    issued: list[str] = []

    async def fetch() -> tuple[str, float | None]:
        issued.append(f"t{len(issued)}")
        return issued[-1], 3600.0

    cache = TokenCache(fetch, margin_s=60, clock=lambda: now[0])
    assert await asyncio.gather(cache.get(), cache.get(), cache.get()) == ["t0", "t0", "t0"]
    now[0] += 3500  # 100 s left: still fine
    assert await cache.get() == "t0"
    now[0] += 50  # 50 s left, inside the margin: renewed before it expires
    assert await cache.get() == "t1"
    cache.invalidate()  # the CRM refused it
    assert await cache.get() == "t2"
    assert "t2" not in repr(cache)


async def test_zoho_unknown_field_is_named() -> None:
    from tests.connectors.fakes import zoho as zo

    async with vendor("zoho") as v:
        zo.CALL_FIELDS.discard("Call_Result")
        try:
            with pytest.raises(DeliveryError, match="INVALID_DATA Call_Result"):
                await v.connector.post_record(RECORD)
        finally:
            zo.CALL_FIELDS.add("Call_Result")
