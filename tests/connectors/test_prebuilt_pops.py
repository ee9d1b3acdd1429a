"""With a prebuilt connector, the pops plugin pops from that CRM: the card an
agent's page shows is the vendor's (its deals or orders, open cases)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from bridge.config import build_config
from bridge.pops.plugin import external_cards
from tests.connectors.prebuilt_fixtures import KNOWN, VENDORS, crm_values, vendor


@pytest.mark.parametrize("name", VENDORS)
async def test_pop_cards_come_from_the_prebuilt_connector(
    name: str, pool: asyncpg.Pool[Any]
) -> None:
    async with vendor(name) as v:
        config = build_config({"crm": crm_values(name, v.fake.url)}, {}, runtime=False)
        card_for_caller = external_cards(v.connector, config.pbx.default_region)
        assert card_for_caller is not None
        card = await card_for_caller(KNOWN)
        assert card is not None and card.name == "Alice Chen"
        assert await card_for_caller("+15559999999") is None
        assert await card_for_caller("anonymous") is None
        assert v.fake.violations == []


async def test_the_builtin_crm_keeps_its_own_cards(pool: asyncpg.Pool[Any]) -> None:
    from bridge.connectors import build_connector

    config = build_config({}, {}, runtime=False)
    assert external_cards(build_connector(config, None), config.pbx.default_region) is None
