"""Component `card_views`: the pops' side of the who-saw-what audit (`bridge.crm.audit`).

Each card a page was shown is noted with the sections it carried and written in batches, so
the pop path never waits on the audit.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bridge.batching import BatchWriter
from bridge.component import Health
from bridge.crm.audit import CardView, record_card_views
from bridge.pops.permissions import sections_shown

__all__ = ["CardViewAudit"]


class CardViewAudit:
    """Component `card_views`: notes each card a page was shown and writes them in batches
    (`bridge.batching`), so the pop path never waits on the audit."""

    name = "card_views"

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._views: BatchWriter[CardView] = BatchWriter(
            lambda views: record_card_views(pool, views), what="card views"
        )

    def note(self, agent_id: str, customer_id: str, call_id: str, card: Mapping[str, Any]) -> None:
        self._views.add(
            CardView(datetime.now(UTC), agent_id, customer_id, call_id, sections_shown(card))
        )

    async def drain(self) -> None:
        await self._views.drain()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self._views.drain(timeout_s=2.0)

    def health(self) -> Health:
        return Health("up", required=False)
