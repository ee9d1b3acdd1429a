"""The prebuilt CRM's cache and change feed as one component for the crm plugin.

`build_crm_feed(config, connector)` gives `CrmFeed`: `directory` is the cached stand-in for
the connector (lookups by number, cards by id; use it wherever the connector would be),
the component polls `changes_since` every `[crm] poll_s` into that cache, and a webhook
(`bridge.connectors.prebuilt.webhook`) hands it the ids a CRM says changed (`invalidate`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bridge.component import Health
from bridge.config import Config
from bridge.connectors.prebuilt.base import PrebuiltConnector
from bridge.connectors.prebuilt.cache import PrebuiltDirectory
from bridge.connectors.prebuilt.feed import ChangeFeed

__all__ = ["CrmFeed", "build_crm_feed"]


class CrmFeed:
    name = "crm_feed"

    def __init__(self, directory: PrebuiltDirectory, poller: ChangeFeed) -> None:
        self.directory = directory
        self.poller = poller
        self.webhook_ids = 0

    @property
    def connector(self) -> PrebuiltConnector:
        return self.directory.connector

    async def poll_once(self) -> int:
        return await self.poller.poll_once()

    def invalidate(self, customer_ids: Iterable[str]) -> int:
        ids = list(customer_ids)
        self.webhook_ids += len(ids)
        return self.directory.invalidate(ids)

    async def start(self) -> None:
        await self.poller.start()

    async def stop(self) -> None:
        await self.poller.stop()

    def health(self) -> Health:
        polled = self.poller.health()
        detail: dict[str, Any] = {
            **polled.detail,
            "poll_s": self.poller.poll_s,
            "webhook_ids": self.webhook_ids,
            "cached_numbers": len(self.directory.lookups.items),
            "cached_cards": len(self.directory.cards.items),
            "stale_served": self.directory.stale_served,
        }
        return Health(polled.state, required=False, detail=detail)


def build_crm_feed(config: Config, connector: Any) -> CrmFeed | None:
    """The cache and feed for a prebuilt connector; None for `builtin` and `rest`."""
    if not isinstance(connector, PrebuiltConnector):
        return None
    crm = config.crm
    directory = PrebuiltDirectory(connector, ttl_s=crm.cache_ttl_s, max_entries=crm.cache_size)
    return CrmFeed(directory, ChangeFeed(connector, directory.refresh, poll_s=crm.poll_s))
