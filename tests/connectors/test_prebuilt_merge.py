"""Customer merges reach the prebuilt connectors: HubSpot's contacts merge and Zoho's Merge
Records API (v6), against their fakes; vendors without a documented merge API acknowledge
without sending."""

from __future__ import annotations

import logging

import pytest

from bridge.crm.merge import MergeRecord
from bridge.errors import DeliveryError
from tests.connectors.prebuilt_fixtures import VENDORS, ZOHO_CONTACT, vendor


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


ZOHO_BOB = "4150868000000100002"


def zoho_contact(cid: str, name: str) -> dict[str, object]:
    return {"id": cid, "Full_Name": name, "Modified_Time": "2026-12-02T03:00:00+00:00"}


async def test_zoho_merges_two_children_per_request_once() -> None:
    async with vendor("zoho") as v:
        others = [ZOHO_BOB, *(f"41508680000001000{i:02d}" for i in range(10, 13))]
        for i, cid in enumerate(others[1:]):
            v.fake.contacts[cid] = zoho_contact(cid, f"Dup {i}")
        await v.connector.merged(record(ZOHO_CONTACT, *others, ZOHO_CONTACT))
        assert v.fake.merge_requests == [(ZOHO_CONTACT, others[:2]), (ZOHO_CONTACT, others[2:])]
        assert set(v.fake.contacts) == {ZOHO_CONTACT}
        kept = v.fake.contacts[ZOHO_CONTACT]
        assert kept["Full_Name"] == "Alice Chen" and kept["Mobile"] == "+15551230002"
        await v.connector.merged(record(ZOHO_CONTACT, *others))  # a repeated delivery
        assert len(v.fake.merge_requests) == 2 and v.fake.violations == []


async def test_zoho_skips_ids_that_cannot_be_its_records(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with vendor("zoho") as v:
        await v.connector.merged(record(ZOHO_CONTACT, "../1?x", "12\r\nX: y"))
        await v.connector.merged(record("'; DROP --", ZOHO_BOB))
        assert v.fake.merge_requests == [] and "not a Zoho record id" in caplog.text
        await v.connector.merged(record("4150868000000999999", ZOHO_BOB))  # no such master
        assert v.fake.merge_requests == [] and ZOHO_BOB in v.fake.contacts
        assert v.fake.violations == []


async def test_zoho_failing_is_a_delivery_error_to_retry() -> None:
    async with vendor("zoho") as v:
        v.fake.hostile = "500"
        with pytest.raises(DeliveryError, match="merge 7"):
            await v.connector.merged(record(ZOHO_CONTACT, ZOHO_BOB))
        v.fake.hostile = ""
        await v.connector.merged(record(ZOHO_CONTACT, ZOHO_BOB))
        assert ZOHO_BOB not in v.fake.contacts and v.connector.health().state == "up"


@pytest.mark.parametrize("name", [n for n in VENDORS if n not in ("hubspot", "zoho")])
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
