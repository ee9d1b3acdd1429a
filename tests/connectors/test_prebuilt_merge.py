"""Customer merges reach the prebuilt connectors: HubSpot's documented contacts merge,
against its fake; vendors without a documented merge API acknowledge without sending."""

from __future__ import annotations

import logging

import pytest

from bridge.crm.merge import MergeRecord
from bridge.errors import DeliveryError
from tests.connectors.prebuilt_fixtures import VENDORS, vendor


def record(survivor: str, *others: str, merge_id: int = 7) -> MergeRecord:
    return MergeRecord(
        merge_id, "2026-12-02T06:40:03+00:00", "cli", survivor, list(others), "", {}, None
    )


async def test_hubspot_merges_each_contact_into_the_survivor_once() -> None:
    async with vendor("hubspot") as v:
        v.fake.contacts["103"] = {"id": "103", "_modified_ms": "0", "properties": {"email": "b@x"}}
        await v.connector.merged(record("101", "102", "103"))
        assert v.fake.merge_requests == [
            {"primaryObjectId": "101", "objectIdToMerge": "102"},
            {"primaryObjectId": "101", "objectIdToMerge": "103"},
        ]
        assert set(v.fake.contacts) == {"101"}
        kept = v.fake.contacts["101"]["properties"]
        assert kept["firstname"] == "Alice" and kept["mobilephone"] == "+15551230002"
        await v.connector.merged(record("101", "102", "103"))  # a repeated delivery
        assert len(v.fake.merge_requests) == 2
        assert v.fake.violations == []


async def test_hubspot_skips_ids_that_cannot_be_its_contacts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with vendor("hubspot") as v:
        before = v.fake.api_requests
        await v.connector.merged(record("101", "../102?x=1", "c-42\r\nX: y"))
        await v.connector.merged(record("'; DROP --", "102"))
        assert v.fake.api_requests == before and v.fake.merge_requests == []
        assert "not a HubSpot contact id" in caplog.text
        await v.connector.merged(record("101", "999"))  # a number HubSpot does not know
        assert v.fake.merge_requests == [] and v.fake.violations == []


async def test_hubspot_failing_is_a_delivery_error_to_retry() -> None:
    async with vendor("hubspot") as v:
        v.fake.hostile = "500"
        with pytest.raises(DeliveryError, match="merge 7"):
            await v.connector.merged(record("101", "102"))
        assert v.connector.health().state == "degraded"
        v.fake.hostile = ""
        await v.connector.merged(record("101", "102"))
        assert "102" not in v.fake.contacts and v.connector.health().state == "up"


@pytest.mark.parametrize("name", [n for n in VENDORS if n != "hubspot"])
async def test_vendors_without_a_merge_api_acknowledge_and_say_so_once(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with vendor(name) as v:
        before = v.fake.api_requests
        with caplog.at_level(logging.WARNING):
            await v.connector.merged(record("a", "b"))
            await v.connector.merged(record("c", "d", merge_id=8))
        assert v.fake.api_requests == before
        said = [r for r in caplog.records if "merges are kept in the bridge only" in r.message]
        assert len(said) == 1
