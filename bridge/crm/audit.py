"""The audit trail: who changed what (with the before and after state), and who saw what.

`record()` takes the connection of the transaction making the change, so the audit row and
the change commit or roll back together; a change without its audit row cannot exist.

`record_card_views()` keeps one `card_views` row per customer card delivered in a pop
(agent, customer, call, the sections it held), written in batches by pop delivery, so a
compliance officer can answer "who saw this customer's data last month".

`search()` reads both, newest first, as one stream of `change` and `card_view` entries with
keyset paging (`GET /api/audit`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import asyncpg

from bridge.db.errors import DB_ERRORS
from bridge.errors import CrmUnavailable

if TYPE_CHECKING:
    from bridge.crm.customers import Conn

WEBHOOK_ACTOR = "crm-webhook"
CLI_ACTOR = "cli"
KINDS = ("card_view", "change")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    before: Any
    after: Any


async def record(
    conn: Conn,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    before: Mapping[str, Any] | Sequence[Any] | None,
    after: Mapping[str, Any] | Sequence[Any] | None,
) -> None:
    """Write one audit row on `conn` (call it inside the change's transaction)."""
    if not conn.is_in_transaction():
        raise RuntimeError("audit.record must run inside the change's transaction")
    await conn.execute(
        "INSERT INTO audit_log (actor, action, target_type, target_id, before, after)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        actor,
        action,
        target_type,
        target_id,
        _plain(before),
        _plain(after),
    )


async def entries(
    pool: asyncpg.Pool[Any],
    *,
    target_type: str | None = None,
    target_id: str | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Newest first, optionally for one target."""
    try:
        rows = await pool.fetch(
            "SELECT id, at, actor, action, target_type, target_id, before, after"
            " FROM audit_log"
            " WHERE ($1::text IS NULL OR target_type = $1)"
            " AND ($2::text IS NULL OR target_id = $2)"
            " ORDER BY id DESC LIMIT $3",
            target_type,
            target_id,
            max(1, min(limit, 1000)),
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise CrmUnavailable(f"cannot read the audit log: {exc}") from exc
    return [AuditEntry(**dict(row)) for row in rows]


def _plain(value: Any) -> Any:
    """JSON-ready copy: datetimes as ISO text, tuples as lists, mappings as dicts."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [_plain(v) for v in items]
    return str(value)


# --- who saw what ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CardView:
    """One customer card delivered to one agent (`sections`: see
    `bridge.pops.permissions.sections_shown`)."""

    at: datetime
    agent_id: str
    customer_id: str
    call_id: str
    sections: tuple[str, ...]


def _text(value: str, limit: int) -> str:
    """Text PostgreSQL accepts (no NUL, valid UTF-8), capped: a hostile id cannot break the
    batch it rides in."""
    value = value.replace("\x00", "")
    return value.encode("utf-8", "replace").decode("utf-8")[:limit]


async def record_card_views(pool: asyncpg.Pool[Any], views: Sequence[CardView]) -> None:
    """Insert the views in one multi-row statement (the pop path batches them)."""
    if not views:
        return
    try:
        await pool.execute(
            "INSERT INTO card_views (at, agent_id, customer_id, call_id, sections)"
            " SELECT v.at, v.agent_id, v.customer_id, v.call_id,"
            "        COALESCE((SELECT array_agg(s.value ORDER BY s.n)"
            "                    FROM jsonb_array_elements_text(v.sections::jsonb)"
            "                         WITH ORDINALITY AS s(value, n)), '{}')"
            # sections travel as JSON text: PostgreSQL arrays cannot be ragged
            " FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[])"
            "   AS v(at, agent_id, customer_id, call_id, sections)",
            [v.at for v in views],
            [_text(v.agent_id, 64) for v in views],
            [_text(v.customer_id, 128) for v in views],
            [_text(v.call_id, 150) for v in views],
            [json.dumps([_text(s, 200) for s in v.sections]) for v in views],
        )
    except DB_ERRORS as exc:
        raise CrmUnavailable(f"cannot record {len(views)} card views: {exc}") from exc


# --- reading the trail -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """`GET /api/audit` filters; None = any. `customer`, `call` and `agent` apply to both
    kinds: a change matches `customer`/`call` by its target, `agent` by its actor."""

    customer: str | None = None
    agent: str | None = None
    call: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    kind: Literal["card_view", "change"] | None = None
    target_type: str | None = None  # changes only (older API)
    target_id: str | None = None


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the previous page stopped: entries are ordered by (at, kind, id) descending."""

    at: datetime
    kind: str
    id: int

    def encode(self) -> str:
        raw = f"{self.at.isoformat()}|{self.kind}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Raise ValueError for anything this module did not write."""
        if not text or len(text) > 200:
            raise ValueError("bad cursor")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            at_text, kind, id_text = raw.split("|")
            at = datetime.fromisoformat(at_text)
            ident = int(id_text)
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise ValueError("bad cursor") from exc
        if kind not in KINDS or at.tzinfo is None or not 0 < ident < 2**63:
            raise ValueError("bad cursor")
        return cls(at, kind, ident)


_SEARCH = """
SELECT * FROM (
  (SELECT 'card_view' AS kind, v.id, v.at, v.agent_id AS actor, NULL::text AS action,
          v.customer_id, v.call_id, v.sections,
          NULL::text AS target_type, NULL::text AS target_id,
          NULL::jsonb AS before, NULL::jsonb AS after
     FROM card_views v
    WHERE ($1::text IS NULL OR $1 = 'card_view')
      AND $7::text IS NULL AND $8::text IS NULL
      AND ($2::text IS NULL OR v.customer_id = $2)
      AND ($3::text IS NULL OR v.agent_id = $3)
      AND ($4::text IS NULL OR v.call_id = $4)
      AND ($5::timestamptz IS NULL OR v.at >= $5)
      AND ($6::timestamptz IS NULL OR v.at < $6)
      AND ($9::timestamptz IS NULL OR (v.at, 'card_view', v.id) < ($9, $10::text, $11::bigint))
    ORDER BY v.at DESC, v.id DESC LIMIT $12)
  UNION ALL
  (SELECT 'change' AS kind, a.id, a.at, a.actor, a.action,
          CASE WHEN a.target_type = 'customer' THEN a.target_id END,
          CASE WHEN a.target_type = 'call' THEN a.target_id END,
          NULL::text[],
          a.target_type, a.target_id, a.before, a.after
     FROM audit_log a
    WHERE ($1::text IS NULL OR $1 = 'change')
      AND ($2::text IS NULL OR (a.target_type = 'customer' AND a.target_id = $2))
      AND ($3::text IS NULL OR a.actor = $3)
      AND ($4::text IS NULL OR (a.target_type = 'call' AND a.target_id = $4))
      AND ($5::timestamptz IS NULL OR a.at >= $5)
      AND ($6::timestamptz IS NULL OR a.at < $6)
      AND ($7::text IS NULL OR a.target_type = $7)
      AND ($8::text IS NULL OR a.target_id = $8)
      AND ($9::timestamptz IS NULL OR (a.at, 'change', a.id) < ($9, $10::text, $11::bigint))
    ORDER BY a.at DESC, a.id DESC LIMIT $12)
) AS entries
ORDER BY at DESC, kind DESC, id DESC
LIMIT $12
"""


async def search(
    pool: asyncpg.Pool[Any],
    where: AuditFilter,
    *,
    limit: int = 100,
    cursor: Cursor | None = None,
) -> tuple[list[dict[str, Any]], Cursor | None]:
    """One page of entries, newest first, and the cursor of the next page (None: last)."""
    limit = max(1, min(limit, 1000))
    try:
        rows = await pool.fetch(
            _SEARCH,
            where.kind,
            where.customer,
            where.agent,
            where.call,
            where.since,
            where.until,
            where.target_type,
            where.target_id,
            cursor.at if cursor else None,
            cursor.kind if cursor else None,
            cursor.id if cursor else None,
            limit + 1,
        )
    except DB_ERRORS as exc:
        raise CrmUnavailable(f"cannot read the audit trail: {exc}") from exc
    page = [_entry(row) for row in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return page, None if last is None else Cursor(last["at"], last["kind"], last["id"])


def _entry(row: Any) -> dict[str, Any]:
    if row["kind"] == "card_view":
        return {
            "kind": "card_view",
            "id": row["id"],
            "at": row["at"].isoformat(),
            "agent": row["actor"],
            "customer": row["customer_id"],
            "call": row["call_id"],
            "sections": list(row["sections"] or []),
        }
    return {
        "kind": "change",
        "id": row["id"],
        "at": row["at"].isoformat(),
        "actor": row["actor"],
        "action": row["action"],
        "target_type": row["target_type"],
        "target_id": row["target_id"],
        "before": row["before"],
        "after": row["after"],
    }
