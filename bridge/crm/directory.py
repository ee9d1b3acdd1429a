"""Caller lookup: E.164 → `Customer`, from the built-in CRM tables, with a cache kept honest
by LISTEN/NOTIFY.

The cache holds hits and misses, bounded (least recently used goes first). A notification
on `crm_customer_changed` names a customer: its cached phones are dropped, and so are all
cached misses (the change may have given one of them a phone). An empty or unknown payload,
a lost listener connection, or a re-listen drop everything. While the listener is not
listening the directory still answers, straight from the database, but caches nothing.
A lookup that started before an invalidation never stores its (possibly stale) answer.

Others caching what a customer shows (the pop hub's cards) follow the same notices through
`on_change(callback)`: `callback(customer_id)` for each customer named on
`crm_customer_changed` or on `crm_card_changed` (orders, contracts, marketing, service
history: it leaves this cache alone), `callback(None)` whenever everything is dropped.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import asyncpg

from bridge.component import Health
from bridge.crm import metrics
from bridge.crm.listener import PgListener
from bridge.db.errors import DB_ERRORS
from bridge.errors import CrmUnavailable
from bridge.models import Customer

log = logging.getLogger(__name__)

CHANNEL = "crm_customer_changed"
CARD_CHANNEL = "crm_card_changed"  # the rest of a customer card changed (sql/112_card_notify)
ChangeObserver = Callable[[str | None], None]  # customer id; None: anything may have changed
_E164 = re.compile(r"\+[1-9][0-9]{5,14}")

# One indexed query: phone (primary key) → customer (primary key) + tags + owner.
# Counted on every lookup: the labelled children looked up once.
_CACHE_HIT = metrics.CACHE.labels("hit")
_CACHE_MISS = metrics.CACHE.labels("miss")

LOOKUP_SQL = """
SELECT c.id, c.name, c.attributes,
       COALESCE((SELECT array_agg(t.tag ORDER BY t.tag)
                   FROM customer_tags t WHERE t.customer_id = c.id), '{}') AS tags,
       (SELECT o.agent_id FROM customer_owners o WHERE o.customer_id = c.id) AS owner
  FROM customer_phones p
  JOIN customers c ON c.id = p.customer_id
 WHERE p.e164 = $1
"""


class CustomerDirectory(Protocol):
    async def lookup(self, e164: str) -> Customer | None:
        """The customer owning this E.164 number, or None. Raises CrmError on trouble."""
        ...


def customer_from_row(row: Any) -> Customer:
    attributes = row["attributes"]
    if not isinstance(attributes, dict):
        attributes = {}
    return Customer(
        id=row["id"],
        name=row["name"],
        tags=tuple(row["tags"] or ()),
        attributes=attributes,
        owner=row["owner"],
    )


class PostgresDirectory:
    """`CustomerDirectory` over the built-in CRM tables (see module docstring)."""

    name = "directory"

    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        *,
        cache_size: int = 10_000,
        listener: PgListener | None = None,
        keepalive_s: float = 10.0,
    ) -> None:
        self._pool = pool
        self._cache_size = max(0, cache_size)
        self._cache: OrderedDict[str, Customer | None] = OrderedDict()
        self._by_customer: dict[str, set[str]] = {}
        self._misses: set[str] = set()
        self._epoch = 0  # bumped by every invalidation
        self._owns_listener = listener is None
        self.listener = listener or PgListener(
            pool, keepalive_s=keepalive_s, name="crm-directory-listener"
        )
        self.listener.subscribe(CHANNEL, self._on_notify, self.clear)
        self.listener.subscribe(CARD_CHANNEL, self._on_card_notify, self.clear)
        self._observers: list[ChangeObserver] = []
        self._last_error = ""

    def on_change(self, observer: ChangeObserver) -> None:
        """`observer(customer_id)` on each change notice, `observer(None)` on each drop."""
        self._observers.append(observer)

    def _tell(self, customer_id: str | None) -> None:
        for observer in self._observers:
            try:
                observer(customer_id)
            except Exception:
                log.exception("directory change observer failed")

    # --- Component ---------------------------------------------------------------------

    async def start(self) -> None:
        if self._owns_listener:
            await self.listener.start()

    async def stop(self) -> None:
        if self._owns_listener:
            await self.listener.stop()
        self.clear()

    def health(self) -> Health:
        detail: dict[str, Any] = {"cached": len(self._cache), "listening": self.listener.listening}
        if self._last_error:
            return Health("down", required=False, detail={**detail, "error": self._last_error})
        return Health(
            "up" if self.listener.listening else "degraded", required=False, detail=detail
        )

    # --- lookup --------------------------------------------------------------------------

    async def lookup(self, e164: str) -> Customer | None:
        if not isinstance(e164, str) or not _E164.fullmatch(e164):
            return None
        if e164 in self._cache:
            self._cache.move_to_end(e164)
            _CACHE_HIT.inc()
            return self._cache[e164]
        _CACHE_MISS.inc()
        epoch = self._epoch
        try:
            async with self._pool.acquire() as conn:
                row = await conn.fetchrow(LOOKUP_SQL, e164)
        except DB_ERRORS as exc:
            self._last_error = f"{type(exc).__name__}: {exc}"
            raise CrmUnavailable(f"customer lookup failed: {exc}") from exc
        self._last_error = ""
        customer = customer_from_row(row) if row is not None else None
        if epoch == self._epoch and self.listener.listening:
            self._store(e164, customer)
        return customer

    # --- cache ---------------------------------------------------------------------------

    def _store(self, e164: str, customer: Customer | None) -> None:
        if self._cache_size == 0:
            return
        self._cache[e164] = customer
        self._cache.move_to_end(e164)
        if customer is not None:
            self._by_customer.setdefault(customer.id, set()).add(e164)
        else:
            self._misses.add(e164)
        while len(self._cache) > self._cache_size:
            old_key, old = self._cache.popitem(last=False)
            if old is None:
                self._misses.discard(old_key)
            else:
                keys = self._by_customer.get(old.id)
                if keys is not None:
                    keys.discard(old_key)
                    if not keys:
                        del self._by_customer[old.id]

    def clear(self) -> None:
        """Drop every cached answer (hits and misses)."""
        self._epoch += 1
        self._cache.clear()
        self._by_customer.clear()
        self._misses.clear()
        self._tell(None)

    def invalidate(self, customer_id: str) -> None:
        """Drop what is cached for this customer, and all cached misses."""
        self._epoch += 1
        for key in self._by_customer.pop(customer_id, set()):
            self._cache.pop(key, None)
        for key in self._misses:
            self._cache.pop(key, None)
        self._misses.clear()
        self._tell(customer_id)

    def _on_notify(self, payload: str) -> None:
        if payload:
            self.invalidate(payload)
        else:
            self.clear()

    def _on_card_notify(self, payload: str) -> None:
        self._tell(payload or None)

    def is_cached(self, e164: str) -> bool:
        return e164 in self._cache

    @property
    def cached(self) -> int:
        return len(self._cache)
