"""Listing finished call records (`GET /api/calls`): filters and keyset pages.

A call's place in the list is its `at`: when it started (when it ended, for a record that
never knew its start), newest first, ties broken by call id. The cursor is that pair,
opaque to clients; pages stay stable while new calls arrive. Rows without `ended_at` are
dispositions waiting for their record (bridge/pops/disposition.py), not calls: not listed.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from bridge.db.errors import map_db_errors

OUTCOMES = ("answered", "abandoned", "unanswered")
DIRECTIONS = ("inbound", "outbound")


@dataclass(frozen=True, slots=True)
class CallFilter:
    """None = any. `agent`: someone who talked on the call (its `agents` list)."""

    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    agent: str | None = None
    queue: str | None = None
    outcome: str | None = None
    customer: str | None = None
    direction: str | None = None


@dataclass(frozen=True, slots=True)
class CallCursor:
    at: datetime
    call_id: str

    def encode(self) -> str:
        raw = f"{self.at.isoformat()}|{self.call_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> CallCursor:
        """ValueError for anything this module did not write."""
        if not text or len(text) > 400:
            raise ValueError("bad cursor")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            at_text, call_id = raw.split("|", 1)
            at = datetime.fromisoformat(at_text)
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise ValueError("bad cursor") from exc
        if at.tzinfo is None or not 0 < len(call_id) <= 150:
            raise ValueError("bad cursor")
        return cls(at, call_id)


_AT = "coalesce(started_at, ended_at)"
_LIST = f"""
SELECT {{columns}}, {_AT} AS list_at FROM call_records
WHERE ended_at IS NOT NULL
  AND ($1::timestamptz IS NULL OR {_AT} >= $1)
  AND ($2::timestamptz IS NULL OR {_AT} < $2)
  AND ($3::text IS NULL OR agents @> jsonb_build_array(jsonb_build_object('agent', $3::text)))
  AND ($4::text IS NULL OR queue = $4)
  AND ($5::text IS NULL OR outcome = $5)
  AND ($6::text IS NULL OR customer_id = $6)
  AND ($7::text IS NULL OR direction = $7)
  AND ($8::timestamptz IS NULL OR ({_AT}, call_id) < ($8, $9::text))
ORDER BY {_AT} DESC, call_id DESC
LIMIT $10
"""


async def list_calls(
    pool: asyncpg.Pool[Any],
    columns: tuple[str, ...],
    where: CallFilter,
    *,
    limit: int = 100,
    cursor: CallCursor | None = None,
) -> tuple[list[dict[str, Any]], CallCursor | None]:
    """One page of records (the given columns), newest first, and the next page's cursor."""
    limit = max(1, min(limit, 500))
    with map_db_errors("cannot list call records"):
        rows = await pool.fetch(
            _LIST.format(columns=", ".join(columns)),
            where.since,
            where.until,
            where.agent,
            where.queue,
            where.outcome,
            where.customer,
            where.direction,
            cursor.at if cursor else None,
            cursor.call_id if cursor else None,
            limit + 1,
        )
    page = [{k: row[k] for k in columns} for row in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return page, None if last is None else CallCursor(last["list_at"], last["call_id"])
