"""Cached lookups and cards in front of a prebuilt connector, kept fresh by the change feed.

A call must not wait on a vendor API that answers in a second or is rate-limited: the
route service asks `lookup` within its budget, the pop asks `card`. Both are cached here,
by E.164 number and by customer id, bounded (least recently used dropped first) and with a
TTL as a safety net for changes the feed could miss. Freshness comes from the feed
(`refresh`: the customers changed since the last poll) and from webhooks (`invalidate`:
the ids a CRM says changed). When the CRM fails, the last good answer is served, however
old: a stale card beats no card while the CRM is down; with nothing cached the error
goes to the caller as before.

"Unknown number" answers are cached too, and dropped on every change the feed or a webhook
reports (a created contact may own any of them).

An answer read while a change arrived is returned but not stored (`epoch`) when that change
could concern it - the same customer, or an "unknown number" answer (any change may have
given the number an owner), or a change no longer remembered (`RECENT_CHANGES`): it may
predate the change, and storing it would undo the invalidation until the TTL. Changes about
other customers do not void it, or a steady stream of webhooks would keep the cache empty and
send every call's lookup to the CRM.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from bridge.clock import MonotonicClock
from bridge.component import Health
from bridge.connectors.prebuilt.base import PrebuiltConnector
from bridge.errors import CrmError
from bridge.models import Customer, CustomerCard

if TYPE_CHECKING:
    from bridge.crm.merge import MergeRecord

__all__ = ["PrebuiltDirectory"]

V = TypeVar("V")

RECENT_CHANGES = 256  # the changes' ids kept for the answers in flight across them


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    stored_at: float


class _Lru(Generic[V]):
    """A bounded map, least recently used first out."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.items: OrderedDict[str, _Entry[V]] = OrderedDict()

    def get(self, key: str) -> _Entry[V] | None:
        entry = self.items.get(key)
        if entry is not None:
            self.items.move_to_end(key)
        return entry

    def put(self, key: str, value: V, now: float) -> None:
        self.items[key] = _Entry(value, now)
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)

    def drop(self, key: str) -> None:
        self.items.pop(key, None)


class PrebuiltDirectory:
    """`lookup` and `card` of `connector`, cached; the rest of the `CrmConnector` interface
    passes through (so it stands in for the connector, starting and stopping it)."""

    name = "crm"

    def __init__(
        self,
        connector: PrebuiltConnector,
        *,
        ttl_s: float,
        max_entries: int,
        clock: MonotonicClock = time.monotonic,
    ) -> None:
        self.connector = connector
        self.ttl_s = ttl_s
        self.clock = clock
        self.lookups: _Lru[Customer | None] = _Lru(max_entries)
        self.cards: _Lru[CustomerCard | None] = _Lru(max_entries)
        self.hits = 0
        self.stale_served = 0
        self.epoch = 0  # bumped by every refresh and invalidation
        # the ids each recent bump concerned (None: any customer), newest last
        self._changes: deque[frozenset[str] | None] = deque(maxlen=RECENT_CHANGES)

    def _changed(self, ids: frozenset[str] | None) -> None:
        self.epoch += 1
        self._changes.append(ids)

    def _storable(self, epoch: int, customer_id: str | None) -> bool:
        """Whether an answer about `customer_id` (None: an unknown number, or no card) read
        since `epoch` may be stored: no change since then could concern it."""
        missed = self.epoch - epoch
        if missed == 0:
            return True
        if customer_id is None or missed > len(self._changes):
            return False
        recent = itertools.islice(reversed(self._changes), missed)
        return all(ids is not None and customer_id not in ids for ids in recent)

    def _fresh(self, entry: _Entry[Any]) -> bool:
        return self.clock() - entry.stored_at < self.ttl_s

    async def lookup(self, e164: str) -> Customer | None:
        entry = self.lookups.get(e164)
        if entry is not None and self._fresh(entry):
            self.hits += 1
            return entry.value
        epoch = self.epoch
        try:
            found = await self.connector.lookup(e164)
        except CrmError:
            if entry is None:
                raise
            self.stale_served += 1
            return entry.value
        if self._storable(epoch, None if found is None else found.id):
            self.lookups.put(e164, found, self.clock())
        return found

    async def card(self, customer_id: str) -> CustomerCard | None:
        entry = self.cards.get(customer_id)
        if entry is not None and self._fresh(entry):
            self.hits += 1
            return entry.value
        epoch = self.epoch
        try:
            card = await self.connector.card(customer_id)
        except CrmError:
            if entry is None:
                raise
            self.stale_served += 1
            return entry.value
        if self._storable(epoch, customer_id):
            self.cards.put(customer_id, card, self.clock())
        return card

    async def refresh(self, changed: Sequence[Customer]) -> None:
        """The feed's sink: cached numbers of these customers get their new values (or are
        dropped when the number is no longer theirs); their cards are read again on demand."""
        by_id = {c.id: c for c in changed}
        self._changed(frozenset(by_id))
        now = self.clock()
        for e164, entry in list(self.lookups.items.items()):
            old = entry.value
            if old is None:
                self.lookups.drop(e164)
            elif old.id in by_id:
                new = by_id[old.id]
                if _owns(new.attributes, e164):
                    self.lookups.items[e164] = _Entry(new, now)
                else:
                    self.lookups.drop(e164)
        for cid in by_id:
            self.cards.drop(cid)

    def invalidate(self, customer_ids: Iterable[str]) -> int:
        """A webhook's ids: their numbers and cards are read from the CRM again next time.
        No ids (a batch about deals, another module): nothing changes, not even the epoch."""
        ids = set(customer_ids)
        if not ids:
            return 0
        self._changed(frozenset(ids))
        dropped = 0
        for e164, entry in list(self.lookups.items.items()):
            if entry.value is None or entry.value.id in ids:
                self.lookups.drop(e164)
                dropped += 1
        for cid in ids:
            if cid in self.cards.items:
                self.cards.drop(cid)
                dropped += 1
        return dropped

    # --- the rest of the connector interface -----------------------------------------------

    async def create_customer(
        self, name: str, e164: str, tags: Sequence[str] = (), *, actor: str = ""
    ) -> Customer:
        created = await self.connector.create_customer(name, e164, tags, actor=actor)
        self._changed(None)  # a lookup of its number in flight may answer another customer
        self.lookups.drop(e164)  # an "unknown" answer for it is wrong now
        return created

    async def merged(self, record: MergeRecord) -> None:
        await self.connector.merged(record)
        self.invalidate([record.survivor_id, *record.merged_ids])

    async def update_customer(
        self,
        customer_id: str,
        *,
        name: str | None,
        tags: Sequence[str] | None,
        actor: str,
        allowed: Callable[[str | None], bool],
    ) -> Customer:
        return await self.connector.update_customer(
            customer_id, name=name, tags=tags, actor=actor, allowed=allowed
        )

    async def post_record(self, record: Mapping[str, Any]) -> None:
        await self.connector.post_record(record)

    async def start(self) -> None:
        await self.connector.start()

    async def stop(self) -> None:
        await self.connector.stop()

    def health(self) -> Health:
        return self.connector.health()


def _owns(attributes: Mapping[str, Any], e164: str) -> bool:
    """Whether `e164` is still among a customer's phone values (as the CRM stores them)."""
    return any(isinstance(v, str) and v == e164 for v in attributes.values())
