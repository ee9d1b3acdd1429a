"""The callers who gave up: abandoned or unanswered inbound calls not yet followed by an
answered call with that number, in either direction; oldest first, one line per number.

Numbers are compared by their last ten digits (`number_key`, indexed by sql/098): records
keep the caller ID as the PBX gave it (`+15551230002` inbound, `15551230002` as an agent
dialled it), and the last ten digits are the subscriber number in every national plan
with a trunk prefix or country code in front.

A query over `call_records`, not a list kept beside them: a call back that is answered (an
outbound record with the number as `caller` and outcome `answered`), or the customer calling
again and reaching someone, removes the line by itself, on every bridge sharing the database.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from bridge.crm.phones import to_e164
from bridge.db.errors import map_db_errors

__all__ = ["Callback", "pending_callbacks"]

MAX_ROWS = 200

_KEY = "right(regexp_replace({}.caller, '\\D', '', 'g'), 10)"  # sql/098's index
_PENDING = f"""
WITH missed AS (
    SELECT r.call_id, r.caller, r.queue, r.started_at, r.outcome, r.customer_id,
           {_KEY.format("r")} AS key
      FROM call_records r
     WHERE r.direction = 'inbound'
       AND r.outcome IN ('abandoned', 'unanswered')
       AND r.started_at >= $1
       AND ($2::text[] IS NULL OR r.queue = ANY($2))
), open AS (
    SELECT m.*, count(*) OVER (PARTITION BY m.key) AS attempts,
           row_number() OVER (PARTITION BY m.key ORDER BY m.started_at, m.call_id) AS nth
      FROM missed m
     WHERE length(m.key) >= 6
       AND NOT EXISTS (
           SELECT 1 FROM call_records a
            WHERE {_KEY.format("a")} = m.key AND a.outcome = 'answered'
              AND a.started_at > m.started_at)
)
SELECT o.call_id, o.caller, o.queue, o.started_at, o.outcome, o.attempts,
       c.id AS customer_id, c.name AS customer_name
  FROM open o
  LEFT JOIN customer_phones p ON p.e164 = o.caller OR p.e164 = '+' || o.caller
  LEFT JOIN customers c ON c.id = coalesce(o.customer_id, p.customer_id)
 WHERE o.nth = 1
 ORDER BY o.started_at, o.call_id
 LIMIT $3
"""


@dataclass(frozen=True, slots=True)
class Callback:
    call_id: str  # the oldest missed call from this number: what a call back answers
    caller: str  # E.164
    queue: str | None
    started_at: datetime
    outcome: str
    attempts: int  # missed calls from this number in the window
    customer_id: str | None
    customer_name: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "caller": self.caller,
            "queue": self.queue,
            "started_at": self.started_at.isoformat(),
            "outcome": self.outcome,
            "attempts": self.attempts,
            "customer": (
                {"id": self.customer_id, "name": self.customer_name} if self.customer_id else None
            ),
        }


async def pending_callbacks(
    pool: asyncpg.Pool[Any],
    *,
    now: datetime,
    days: int,
    queues: Collection[str] | None = None,
    region: str | Callable[[str], str] = "US",
) -> list[Callback]:
    """Callers to call back, for `queues` (None: every queue), oldest first. `region` reads
    a national caller ID: one for every call, or a call id's own PBX's (`PbxRegions.of_call`)."""
    since = now - timedelta(days=days)
    wanted = None if queues is None else sorted(queues)
    with map_db_errors("cannot read the callback list"):
        rows = await pool.fetch(_PENDING, since, wanted, MAX_ROWS)
    out = []
    for row in rows:
        values = dict(row)
        own = region if isinstance(region, str) else region(values["call_id"])
        values["caller"] = to_e164(values["caller"], own) or values["caller"]
        out.append(Callback(**values))
    return out


async def callback_number(pool: asyncpg.Pool[Any], call_id: str) -> tuple[str, str | None] | None:
    """(caller, queue) of a missed inbound call a call back may answer; None otherwise."""
    with map_db_errors("cannot read the call"):
        row = await pool.fetchrow(
            "SELECT caller, queue FROM call_records WHERE call_id = $1"
            " AND direction = 'inbound' AND outcome IN ('abandoned', 'unanswered')",
            call_id,
        )
    return None if row is None else (row["caller"], row["queue"])
