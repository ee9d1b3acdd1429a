"""The customer card of the built-in CRM (`bridge.models.CustomerCard`), loaded in one query.

Bounded: the newest `MAX_ROWS` orders, contracts, marketing events and service-history rows.
Values come back as JSON-ready data (numbers, ISO-8601 strings), so the hub encodes a card
once per call; what each agent may see of it is `bridge.pops.permissions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from bridge.db.errors import map_db_errors
from bridge.models import CustomerCard

__all__ = ["MAX_ROWS", "load_card"]

MAX_ROWS = 5


# json_agg keeps ORDER BY of the sub-select; timestamps come out as ISO-8601 text.
CARD_SQL = """
SELECT c.id, c.name, c.attributes,
  COALESCE((SELECT array_agg(t.tag ORDER BY t.tag) FROM customer_tags t
             WHERE t.customer_id = c.id), '{}') AS tags,
  (SELECT o.agent_id FROM customer_owners o WHERE o.customer_id = c.id) AS owner,
  COALESCE((SELECT json_agg(x) FROM (
      SELECT reference, product, amount, currency, status, ordered_at FROM orders
       WHERE customer_id = c.id ORDER BY ordered_at DESC, id DESC LIMIT $2) x), '[]') AS orders,
  COALESCE((SELECT json_agg(x) FROM (
      SELECT kind, reference, status, stage, progress_pct, total_amount, paid_amount,
             started_at, due_at FROM contracts
       WHERE customer_id = c.id ORDER BY started_at DESC, id DESC LIMIT $2) x), '[]')
    AS contracts,
  COALESCE((SELECT json_agg(x) FROM (
      SELECT campaign, channel, coupon_code, status, occurred_at FROM marketing_events
       WHERE customer_id = c.id ORDER BY occurred_at DESC, id DESC LIMIT $2) x), '[]')
    AS marketing,
  COALESCE((SELECT json_agg(x) FROM (
      SELECT kind, occurred_at, agent_id, summary, outcome, disposition, notes, call_id
        FROM service_history
       WHERE customer_id = c.id ORDER BY occurred_at DESC, id DESC LIMIT $2) x), '[]')
    AS history
  FROM customers c WHERE c.id = $1
"""


def _rows(value: Any) -> tuple[Mapping[str, Any], ...]:
    if not isinstance(value, list):
        return ()
    return tuple(row for row in value if isinstance(row, dict))


def _last_outcome(history: tuple[Mapping[str, Any], ...]) -> Mapping[str, Any] | None:
    if not history:
        return None
    row = history[0]
    return {
        "at": row.get("occurred_at"),
        "kind": row.get("kind"),
        "outcome": row.get("outcome"),
        "disposition": row.get("disposition"),
    }


def card_from_row(row: Mapping[str, Any]) -> CustomerCard:
    attributes = row["attributes"] if isinstance(row["attributes"], dict) else {}
    history = _rows(row["history"])
    return CustomerCard(
        id=row["id"],
        name=row["name"],
        tags=tuple(row["tags"] or ()),
        owner=row["owner"],
        attributes=attributes,
        orders=_rows(row["orders"]),
        contracts=_rows(row["contracts"]),
        marketing=_rows(row["marketing"]),
        history=history,
        last_outcome=_last_outcome(history),
    )


async def load_card(
    pool: asyncpg.Pool[Any], customer_id: str, *, max_rows: int = MAX_ROWS
) -> CustomerCard | None:
    """The card of this customer, or None if it does not exist. Raises CrmUnavailable."""
    if not isinstance(customer_id, str) or not 0 < len(customer_id) <= 128:
        return None
    if "\x00" in customer_id:
        return None
    with map_db_errors("customer card query failed"):
        row = await pool.fetchrow(CARD_SQL, customer_id, max_rows)
    return None if row is None else card_from_row(row)
