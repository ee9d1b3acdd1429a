"""The prebuilt connectors' cache and change feed (`build_crm_feed`), against each fake:
an edit in the CRM reaches the cache after one poll; a failed poll keeps its cursor and the
cache serves the last good answer; webhooks' ids invalidate; the bounds hold."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from bridge.config import build_config
from bridge.connectors.prebuilt.cache import RECENT_CHANGES, PrebuiltDirectory
from bridge.connectors.prebuilt.wiring import CrmFeed, build_crm_feed
from bridge.crm.merge import MergeRecord
from bridge.errors import CrmError
from bridge.models import Customer
from tests.connectors.prebuilt_fixtures import (
    KNOWN,
    SF_CONTACT,
    SUITE_CONTACT,
    VENDORS,
    ZOHO_CONTACT,
    Pair,
    crm_values,
    vendor,
)

AFTER_SEED = datetime(2026, 12, 2, 4, tzinfo=UTC)  # later than every seeded modification
CONTACT_ID = {
    "hubspot": "101",
    "salesforce": SF_CONTACT,
    "zoho": ZOHO_CONTACT,
    "odoo": "42",
    "suitecrm": SUITE_CONTACT,
}


def rename_in_crm(name: str, fake: Any) -> None:
    """What a CRM user does: Alice Chen becomes Alicia Chen, on 2026-12-03."""
    if name == "hubspot":
        item = fake.contacts["101"]
        item["properties"] |= {"firstname": "Alicia", "lastmodifieddate": "2026-12-03T00:00:00Z"}
        item["_modified_ms"] = "1796256000000"
    elif name == "salesforce":
        fake.contacts[SF_CONTACT] |= {
            "Name": "Alicia Chen",
            "LastModifiedDate": "2026-12-03T00:00:00.000+0000",
        }
    elif name == "zoho":
        fake.contacts[ZOHO_CONTACT] |= {
            "Full_Name": "Alicia Chen",
            "Modified_Time": "2026-12-03T00:00:00+00:00",
        }
    elif name == "suitecrm":
        fake.records["Contacts"][SUITE_CONTACT] |= {
            "first_name": "Alicia",
            "date_modified": "2026-12-03 00:00:00",
        }
    else:
        fake.partners[42] |= {"name": "Alicia Chen", "write_date": "2026-12-03 00:00:00"}


def feed_for(v: Pair, **crm: Any) -> CrmFeed:
    config = build_config({"crm": crm_values(v.name, v.fake.url, **crm)}, {}, runtime=False)
    feed = build_crm_feed(config, v.connector)
    assert feed is not None
    feed.poller.cursor = AFTER_SEED
    return feed


@pytest.mark.parametrize("name", VENDORS)
async def test_an_edit_in_the_crm_reaches_the_cache_after_one_poll(name: str) -> None:
    async with vendor(name) as v:
        feed = feed_for(v)
        cache = feed.directory
        first = await cache.lookup(KNOWN)
        card = await cache.card(CONTACT_ID[name])
        assert first is not None and first.name == "Alice Chen"
        assert card is not None and card.name == "Alice Chen"
        rename_in_crm(name, v.fake)
        before = v.fake.api_requests
        assert (await cache.lookup(KNOWN)) == first  # cached: the CRM is not asked
        assert v.fake.api_requests == before

        assert await feed.poll_once() == 1
        after_poll = v.fake.api_requests
        renamed = await cache.lookup(KNOWN)
        assert renamed is not None and renamed.name == "Alicia Chen"
        assert renamed.tags == first.tags and renamed.owner == first.owner  # routing's keys
        assert v.fake.api_requests == after_poll  # the feed brought the new value
        card = await cache.card(CONTACT_ID[name])
        assert card is not None and card.name == "Alicia Chen"
        assert v.fake.violations == []
    assert feed.health().state == "up"


@pytest.mark.parametrize("name", VENDORS)
async def test_a_failed_poll_keeps_the_cursor_and_the_last_good_answer(name: str) -> None:
    now = [0.0]
    async with vendor(name) as v:
        feed = feed_for(v, cache_ttl_s=60)
        cache = feed.directory
        cache.clock = lambda: now[0]
        assert (await cache.lookup(KNOWN)) is not None
        assert (await cache.card(CONTACT_ID[name])) is not None
        rename_in_crm(name, v.fake)
        v.fake.hostile = "500"
        assert await feed.poll_once() == 0
        assert feed.poller.cursor == AFTER_SEED
        assert feed.health().state == "degraded"

        now[0] = 61.0  # expired: the CRM is asked, fails, the last answer is served
        stale = await cache.lookup(KNOWN)
        stale_card = await cache.card(CONTACT_ID[name])
        assert stale is not None and stale.name == "Alice Chen"
        assert stale_card is not None and stale_card.name == "Alice Chen"
        assert cache.stale_served == 2
        with pytest.raises(CrmError):  # nothing cached for this one: the error goes on
            await cache.lookup("+15559990000")

        v.fake.hostile = ""
        assert await feed.poll_once() == 1  # the same change, from the kept cursor
        renamed = await cache.lookup(KNOWN)
        assert renamed is not None and renamed.name == "Alicia Chen"
        assert feed.health().state == "up" and v.fake.violations == []


async def test_webhook_ids_and_created_customers_invalidate() -> None:
    async with vendor("hubspot") as v:
        feed = feed_for(v)
        cache = feed.directory
        assert (await cache.lookup("+15557770001")) is None  # unknown, and cached so
        await cache.lookup(KNOWN)
        await cache.card("101")
        rename_in_crm("hubspot", v.fake)
        assert feed.invalidate(["101"]) == 3  # the number, the card, the unknown number
        found = await cache.lookup(KNOWN)
        assert found is not None and found.name == "Alicia Chen"

        assert (await cache.lookup("+15557770003")) is None  # cached as unknown
        created = await cache.create_customer("Erin Fox", "+15557770003")
        again = await cache.lookup("+15557770003")
        assert again is not None and again.id == created.id  # "unknown" dropped by the create
        assert feed.health().detail["webhook_ids"] == 1


async def test_a_merge_drops_the_merged_customers() -> None:
    async with vendor("hubspot") as v:
        feed = feed_for(v)
        cache = feed.directory
        await cache.lookup("+15551230002")  # Bob, 102
        await cache.card("102")
        await cache.merged(
            MergeRecord(1, "2026-12-02T06:40:03+00:00", "cli", "101", ["102"], "", {}, None)
        )
        assert "102" not in cache.cards.items
        assert "+15551230002" not in cache.lookups.items


async def test_the_cache_is_bounded_least_recently_used_out() -> None:
    async with vendor("hubspot") as v:
        feed = feed_for(v, cache_size=2)
        cache = feed.directory
        for number in ("+15557770011", KNOWN, "+15557770012"):
            await cache.lookup(number)
        assert list(cache.lookups.items) == [KNOWN, "+15557770012"]


async def test_not_built_for_the_builtin_or_rest_connectors() -> None:
    config = build_config({}, {}, runtime=False)
    assert build_crm_feed(config, object()) is None


class GatedConnector:
    """A connector whose lookup waits for the test's go, to interleave a change with it."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.go = asyncio.Event()
        self.name = "Alice Chen"

    async def lookup(self, e164: str) -> Customer | None:
        self.started.set()
        await self.go.wait()
        return Customer(id="101", name=self.name, attributes={"phone": e164})


async def test_an_answer_read_across_a_change_is_not_stored() -> None:
    crm = GatedConnector()
    cache = PrebuiltDirectory(crm, ttl_s=60, max_entries=10)  # type: ignore[arg-type]
    pending = asyncio.create_task(cache.lookup(KNOWN))
    await crm.started.wait()
    cache.invalidate(["101"])  # the webhook arrives while the CRM answers the old value
    crm.go.set()
    assert (await pending) is not None
    assert KNOWN not in cache.lookups.items
    crm.name = "Alicia Chen"
    again = await cache.lookup(KNOWN)
    assert again is not None and again.name == "Alicia Chen"
    assert KNOWN in cache.lookups.items


async def test_a_change_about_another_customer_does_not_void_an_answer_in_flight() -> None:
    """A stream of webhooks about other customers must not keep the cache empty (every
    call's lookup going to a rate-limited CRM); an unknown-number answer is still voided
    by any change, as a changed contact may own the number now."""
    crm = GatedConnector()
    cache = PrebuiltDirectory(crm, ttl_s=60, max_entries=10)  # type: ignore[arg-type]
    pending = asyncio.create_task(cache.lookup(KNOWN))
    await crm.started.wait()
    cache.invalidate(["555"])
    await cache.refresh([Customer(id="556", name="Someone Else")])
    crm.go.set()
    assert (await pending) is not None
    assert KNOWN in cache.lookups.items  # 101's answer, untouched by 555's and 556's changes


async def test_an_unknown_number_read_across_any_change_is_not_stored() -> None:
    class Unknown(GatedConnector):
        async def lookup(self, e164: str) -> Customer | None:
            await super().lookup(e164)
            return None

    crm = Unknown()
    cache = PrebuiltDirectory(crm, ttl_s=60, max_entries=10)  # type: ignore[arg-type]
    pending = asyncio.create_task(cache.lookup("+15557770099"))
    await crm.started.wait()
    cache.invalidate(["555"])  # 555 may have been given this number
    crm.go.set()
    assert (await pending) is None
    assert "+15557770099" not in cache.lookups.items


async def test_an_answer_across_more_changes_than_remembered_is_not_stored() -> None:
    crm = GatedConnector()
    cache = PrebuiltDirectory(crm, ttl_s=60, max_entries=10)  # type: ignore[arg-type]
    pending = asyncio.create_task(cache.lookup(KNOWN))
    await crm.started.wait()
    for n in range(RECENT_CHANGES + 1):
        cache.invalidate([f"9{n}"])
    crm.go.set()
    await pending
    assert KNOWN not in cache.lookups.items
