"""The desk's tags on "create customer" reach each CRM where the preset maps them: HubSpot,
Salesforce and SuiteCRM in `[crm] tags_field`, Zoho through its Tag API, Odoo as partner
categories (existing ones reused, missing ones created); each fake validates the request."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bridge.errors import CrmRefused
from tests.connectors.prebuilt_fixtures import VENDORS, vendor

TAGS = ["VIP", " late   payer ", "VIP", "a;b", "", "x,y"]
SENT = ["VIP", "late payer", "a b", "x y"]  # cleaned: one line, no list separators, once each
FIELD = {"hubspot": "bridge_tags", "salesforce": "Tags__c", "suitecrm": "tags_c"}


def stored_tags(name: str, fake: Any, cid: str) -> Any:
    if name == "hubspot":
        return fake.contacts[cid]["properties"].get("bridge_tags")
    if name == "salesforce":
        return fake.contacts[cid].get("Tags__c")
    if name == "suitecrm":
        return fake.records["Contacts"][cid].get("tags_c")
    if name == "zoho":
        return [t["name"] for t in fake.contacts[cid].get("Tag", [])]
    return [fake.categories[i] for i in fake.partners[int(cid)]["category_id"]]


@pytest.mark.parametrize("name", VENDORS)
async def test_tags_from_the_desk_reach_the_crm(name: str) -> None:
    extra = {"tags_field": FIELD[name]} if name in FIELD else {}
    async with vendor(name, **extra) as v:
        created = await v.connector.create_customer("Carol Diaz", "+15557770001", TAGS)
        stored = stored_tags(name, v.fake, created.id)
        found = await v.connector.lookup("+15557770001")
        assert v.fake.violations == []
    assert stored == (";".join(SENT) if name in FIELD else SENT)
    if name in ("zoho", "odoo"):  # their card shows the CRM's own tags
        assert found is not None and list(found.tags) == SENT


async def test_odoo_reuses_existing_categories() -> None:
    async with vendor("odoo") as v:
        before = dict(v.fake.categories)
        await v.connector.create_customer("Carol Diaz", "+15557770001", ["VIP", "Wholesale"])
        assert v.fake.categories == before


@pytest.mark.parametrize("name", ["hubspot", "salesforce", "suitecrm"])
async def test_without_tags_field_tags_stay_in_the_bridge(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with vendor(name) as v:
        with caplog.at_level(logging.WARNING):
            one = await v.connector.create_customer("Carol Diaz", "+15557770001", ["VIP"])
            await v.connector.create_customer("Dan Eve", "+15557770002", ["VIP"])
        assert stored_tags(name, v.fake, one.id) is None
        assert v.fake.violations == []
    assert sum("set [crm] tags_field" in r.message for r in caplog.records) == 1


@pytest.mark.parametrize(
    ("name", "field"),
    [("hubspot", "no_such_prop"), ("salesforce", "Missing__c"), ("suitecrm", "missing_c")],
)
async def test_a_tags_field_the_crm_lacks_is_a_clear_field_error(name: str, field: str) -> None:
    async with vendor(name, tags_field=field) as v:
        with pytest.raises(CrmRefused) as refused:
            await v.connector.create_customer("Carol Diaz", "+15557770001", ["VIP"])
        assert refused.value.kind == "field"
        await v.connector.create_customer("Carol Diaz", "+15557770001")  # no tags: no field
        assert v.fake.violations == []


async def test_zoho_refusing_the_tags_keeps_the_created_contact(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with vendor("zoho") as v:
        v.fake.refuse_tags = True
        created = await v.connector.create_customer("Carol Diaz", "+15557770001", ["VIP"])
        assert created.id in v.fake.contacts and created.tags == ()
        assert "created without its tags" in caplog.text
