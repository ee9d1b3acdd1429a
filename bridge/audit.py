"""The audit trail: who changed what, with the before and after state, and when.

`record()` takes the connection of the transaction making the change, so the audit row and
the change commit or roll back together; a change without its audit row cannot exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from bridge.errors import CrmUnavailable

if TYPE_CHECKING:
    from bridge.customers import Conn

WEBHOOK_ACTOR = "crm-webhook"


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
