"""Each prebuilt connector against a fake of its vendor's documented API: lookup, the card,
idempotent call write-back, create customer, the change feed; every request validated."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bridge.connectors.prebuilt import ChangeFeed
from bridge.models import Customer
from tests.connectors.prebuilt_fixtures import (
    KNOWN,
    SF_CONTACT,
    SUITE_CONTACT,
    VENDORS,
    ZOHO_CONTACT,
    vendor,
)

RECORD: dict[str, Any] = {
    "call_id": "1764657603.42",
    "caller": KNOWN,
    "customer_id": None,
    "direction": "inbound",
    "queue": "support",
    "agents": [{"agent": "sue", "answered_at": "2026-12-02T06:40:10+00:00", "talk_s": 95}],
    "started_at": "2026-12-02T06:40:03+00:00",
    "duration_s": 102,
    "talk_s": 95,
    "outcome": "answered",
    "recording_path": "1764657603.42.wav",
    "disposition": None,
    "notes": None,
}
CONTACT_ID = {
    "hubspot": "101",
    "salesforce": SF_CONTACT,
    "zoho": ZOHO_CONTACT,
    "odoo": "42",
    "suitecrm": SUITE_CONTACT,
}


def written(name: str, fake: Any) -> list[dict[str, Any]]:
    if name == "hubspot":
        return [c["properties"] | {"_contact": c["_contact"]} for c in fake.calls.values()]
    if name == "salesforce":
        return list(fake.tasks.values())
    if name == "zoho":
        return list(fake.calls.values())
    if name == "suitecrm":
        return list(fake.records["Calls"].values())
    return list(fake.messages.values())


@pytest.mark.parametrize("name", VENDORS)
async def test_lookup_finds_the_caller_and_maps_the_card_fields(name: str) -> None:
    async with vendor(name) as v:
        customer = await v.connector.lookup(KNOWN)
        assert customer is not None
        assert customer.id == CONTACT_ID[name] and customer.name == "Alice Chen"
        assert await v.connector.lookup("+15559999999") is None
        assert v.fake.violations == []
    if name == "hubspot":
        assert customer.tags == ("customer",) and customer.owner == "88"
    if name == "salesforce":
        assert customer.owner == "Sue Agent" and customer.attributes["account"] == "Acme"
    if name in ("odoo", "zoho"):
        assert customer.tags == ("VIP",) and customer.owner == "Sue Agent"
    if name == "suitecrm":
        assert customer.owner == "sue" and customer.attributes["email1"] == "alice@example.com"


@pytest.mark.parametrize("name", VENDORS)
async def test_card_shows_deals_or_orders_and_open_cases(name: str) -> None:
    async with vendor(name) as v:
        card = await v.connector.card(CONTACT_ID[name])
        assert v.fake.violations == []
    assert card is not None and card.name == "Alice Chen"
    assert len(card.orders) == 1 and card.orders[0]["reference"] in (
        "Renewal 2027",
        "Fibre upgrade",
        "S00042",
    )
    if name == "odoo":  # helpdesk is an Enterprise app: absent here, so no cases, no error
        assert card.history == ()
    else:
        assert [c["subject"] for c in card.history] in (["Router down"], ["No dial tone"])


@pytest.mark.parametrize("name", VENDORS)
async def test_a_call_delivered_twice_is_written_once_then_updated(name: str) -> None:
    async with vendor(name) as v:
        await v.connector.post_record(RECORD)  # no customer_id: found again by the caller
        await v.connector.post_record(RECORD | {"disposition": "resolved", "notes": "reset router"})
        rows = written(name, v.fake)
        assert v.fake.violations == []
    assert len(rows) == 1
    text = str(rows[0])
    assert "1764657603.42" in text and "resolved" in text and "reset router" in text
    if name == "hubspot":
        assert rows[0]["hs_call_duration"] == "102000" and rows[0]["hs_call_direction"] == "INBOUND"
        assert rows[0]["_contact"] == "101"
    if name == "salesforce":
        row = rows[0]
        assert row["CallDurationInSeconds"] == 102 and row["CallType"] == "Inbound"
        assert row["CallDisposition"] == "resolved" and row["WhoId"] == SF_CONTACT
        assert row["CallObject"] == "1764657603.42"
    if name == "odoo":
        assert rows[0]["res_id"] == 42
    if name == "zoho":
        assert rows[0]["Call_Duration"] == "01:42" and rows[0]["Call_Type"] == "Inbound"
        assert rows[0]["Who_Id"] == {"id": ZOHO_CONTACT} and rows[0]["Call_Result"] == "resolved"
    if name == "suitecrm":
        assert rows[0]["duration_minutes"] == 1 and rows[0]["direction"] == "Inbound"
        assert rows[0]["parent_id"] == SUITE_CONTACT and rows[0]["status"] == "Held"


async def test_an_odoo_call_from_an_unknown_caller_is_accepted_and_logged_nowhere() -> None:
    async with vendor("odoo") as v:
        await v.connector.post_record(RECORD | {"caller": "+15559999999"})
        assert v.fake.messages == {} and v.fake.violations == []


@pytest.mark.parametrize("name", VENDORS)
async def test_hostile_notes_are_sent_as_data(name: str) -> None:
    notes = "<script>alert(1)</script>'; DROP TABLE x; --\x00\r\nline2"
    async with vendor(name) as v:
        await v.connector.post_record(RECORD | {"notes": notes, "call_id": "1.2'\"\\"})
        rows = written(name, v.fake)
        assert v.fake.violations == [] and len(rows) == 1
        await v.connector.post_record(RECORD | {"notes": notes, "call_id": "1.2'\"\\"})
        assert len(written(name, v.fake)) == 1
    assert "\x00" not in str(rows[0])
    if name == "odoo":
        assert "<script>" not in rows[0]["body"] and "&lt;script&gt;" in rows[0]["body"]


@pytest.mark.parametrize("name", VENDORS)
async def test_create_customer_from_the_desk(name: str) -> None:
    async with vendor(name) as v:
        created = await v.connector.create_customer("Carol  Diaz", "+15557770001")
        found = await v.connector.lookup("+15557770001")
        assert v.fake.violations == []
    assert found is not None and found.id == created.id
    assert found.name == "Carol Diaz"


@pytest.mark.parametrize("name", VENDORS)
async def test_change_feed_pages_through_updated_since(name: str) -> None:
    seen: list[Customer] = []

    async def sink(customers: Any) -> None:
        seen.extend(customers)

    async with vendor(name) as v:
        feed = ChangeFeed(v.connector, sink, poll_s=0, since=datetime(2026, 12, 1, tzinfo=UTC))
        count = await feed.poll_once()
        first_cursor = feed.cursor
        assert await feed.poll_once() == 0  # nothing changed since the cursor
        assert v.fake.violations == []
    assert count == len(seen) >= 2
    assert first_cursor > datetime(2026, 12, 2, tzinfo=UTC)
    assert feed.health().state == "up"
