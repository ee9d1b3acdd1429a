"""Customer cards by customer id, kept honest by the directory's change notices.

The cache holds full cards (what each agent may see of one is filtered per page, after the
cache: `bridge.pops.permissions`), bounded: the least recently used goes first. A notice
naming a customer drops its card; a drop-everything notice (or a lost listener) drops all.
A load that started before a notice about its customer never stores its (possibly stale)
answer, and a `get` after the notice never joins it: the next pop shows the new card. While
the notices are not heard (`listening()` false), cards are loaded every time, never kept.

Concurrent `get`s of one customer share one load; `prefetch` starts it early (routing knows
the customer before the agent's phone rings).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from bridge.pops.card import CustomerCard
from bridge.tasks import cancel_and_wait

__all__ = ["CardCache"]

log = logging.getLogger(__name__)

LoadCard = Callable[[str], Awaitable[CustomerCard | None]]


class CardCache:
    def __init__(
        self, load: LoadCard, listening: Callable[[], bool], *, max_cards: int = 10_000
    ) -> None:
        self._load = load
        self._listening = listening
        self._max = max(0, max_cards)
        self._cards: OrderedDict[str, CustomerCard] = OrderedDict()
        # customer id -> its load in flight; a notice takes the load out, so it stores nothing
        self._loading: dict[str, asyncio.Task[CustomerCard | None]] = {}
        self._tasks: set[asyncio.Task[CustomerCard | None]] = set()  # every load in flight

    def __len__(self) -> int:
        return len(self._cards)

    async def get(self, customer_id: str) -> CustomerCard | None:
        """The customer's card, or None if there is no such customer. Raises what the
        loader raises (CrmUnavailable)."""
        card = self._cards.get(customer_id)
        if card is not None:
            self._cards.move_to_end(customer_id)
            return card
        return await asyncio.shield(self._start(customer_id))

    def prefetch(self, customer_id: str) -> None:
        """Start loading the card unless it is cached or loading already. Never raises."""
        if customer_id not in self._cards:
            self._start(customer_id)

    def invalidate(self, customer_id: str | None) -> None:
        """A change notice for `customer_id` (None: anything may have changed)."""
        if customer_id is None:
            self._cards.clear()
            self._loading.clear()
        else:
            self._cards.pop(customer_id, None)
            self._loading.pop(customer_id, None)

    async def close(self) -> None:
        """Cancel the loads in flight (shutdown)."""
        self._loading.clear()
        await cancel_and_wait(*self._tasks)

    def _start(self, customer_id: str) -> asyncio.Task[CustomerCard | None]:
        task = self._loading.get(customer_id)
        if task is None:
            task = asyncio.ensure_future(self._fetch(customer_id))
            task.add_done_callback(self._done)
            self._loading[customer_id] = task
            self._tasks.add(task)
        return task

    async def _fetch(self, customer_id: str) -> CustomerCard | None:
        me = asyncio.current_task()
        try:
            card = await self._load(customer_id)
        finally:
            current = self._loading.get(customer_id) is me
            if current:
                del self._loading[customer_id]
        if card is not None and current and self._listening() and self._max:
            self._store(customer_id, card)
        return card

    def _done(self, task: asyncio.Task[CustomerCard | None]) -> None:
        self._tasks.discard(task)
        # A prefetch nobody awaited must not leave "exception never retrieved" behind.
        if not task.cancelled() and task.exception() is not None:
            log.debug("card load failed: %s", task.exception())

    def _store(self, customer_id: str, card: CustomerCard) -> None:
        self._cards[customer_id] = card
        self._cards.move_to_end(customer_id)
        while len(self._cards) > self._max:
            self._cards.popitem(last=False)
