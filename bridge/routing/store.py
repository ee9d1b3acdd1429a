"""Routing rules in PostgreSQL, cached in process and refreshed by NOTIFY crm_rules_changed.

`current()` answers from the cache while the shared listener (bridge/crm/listener.py) is
listening; a notification, a lost listener or a re-listen empties the cache, and the next
call reloads. Without a listener the store reloads on every call, so a change is never
missed. A row whose specs no longer parse (edited by hand) is skipped with a warning rather
than stopping routing.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import asyncpg

from bridge.component import Health
from bridge.crm.listener import PgListener
from bridge.db.errors import map_db_errors
from bridge.errors import NotFound, ValidationError
from bridge.routing.rules import Rule, make_rule

log = logging.getLogger(__name__)

CHANNEL = "crm_rules_changed"
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,80}")
RULE_COLUMNS = (
    "name, position, queue, priority, tags_any, tags_all, unknown_caller, caller_prefix,"
    " did, when_spec, attr_spec, enabled"
)
# Any constant: serialises position changes between processes (CLI, admin API, bridge).
RULES_LOCK = 7_420_010
_COLUMNS, _RULES_LOCK = RULE_COLUMNS, RULES_LOCK  # old private names, still imported elsewhere


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise NotFound(f"no routing rule named {str(name)[:80]!r}")


def rule_from_row(row: Any) -> Rule:
    return make_rule(
        row["name"],
        row["queue"],
        position=max(0, row["position"]),
        priority=row["priority"],
        tags_any=row["tags_any"],
        tags_all=row["tags_all"],
        unknown_caller=row["unknown_caller"],
        caller_prefix=row["caller_prefix"],
        did=row["did"],
        when=row["when_spec"],
        attr=row["attr_spec"],
        enabled=row["enabled"],
    )


def _rules_from_rows(rows: list[Any]) -> list[Rule]:
    rules = []
    for row in rows:
        try:
            rules.append(rule_from_row(row))
        except ValidationError as exc:
            log.warning("routing rule %r skipped: %s", row["name"], exc)
    return rules


class RuleStore:
    """The rules, ordered by position; see module docstring."""

    name = "rules"

    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        *,
        listener: PgListener | None = None,
        keepalive_s: float = 10.0,
    ) -> None:
        self.pool = pool
        self._cache: list[Rule] | None = None
        self._epoch = 0
        self._owns_listener = listener is None
        self.listener = listener or PgListener(
            pool, keepalive_s=keepalive_s, name="crm-rules-listener"
        )
        self.listener.subscribe(CHANNEL, lambda _payload: self.invalidate(), self.invalidate)
        self._started = False
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        if self._owns_listener:
            await self.listener.start()
        self._started = True

    async def stop(self) -> None:
        if self._owns_listener:
            await self.listener.stop()
        self._started = False
        self.invalidate()

    def health(self) -> Health:
        return Health(
            "up" if self.listener.listening else "degraded",
            required=False,
            detail={"cached": self._cache is not None},
        )

    def invalidate(self) -> None:
        self._epoch += 1
        self._cache = None

    async def current(self) -> list[Rule]:
        """Enabled-or-not rules in position order, from the cache when it can be trusted."""
        cached = self._cache
        if cached is not None:
            return cached
        async with self._lock:  # one reload at a time; the others reuse it
            if self._cache is not None:
                return self._cache
            epoch = self._epoch
            rules = await self.list_rules()
            if epoch == self._epoch and self.listener.listening:
                self._cache = rules
            return rules

    async def list_rules(self) -> list[Rule]:
        """Straight from the database (no cache)."""
        with map_db_errors("cannot read routing rules"):
            rows = await self.pool.fetch(
                f"SELECT {RULE_COLUMNS} FROM routing_rules ORDER BY position, name"
            )
        return _rules_from_rows(rows)

    async def add_rule(self, rule: Rule, *, position: int | None = None) -> Rule:
        """Insert `rule` at `position` (1-based; others shift down) or, by default, last.

        A position past the end appends. ValidationError if the name exists.
        """
        with map_db_errors("cannot add routing rule"):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    stored = await insert_rule(conn, rule, position=position)
            except asyncpg.UniqueViolationError as exc:
                raise ValidationError("name", f"rule {rule.name} already exists") from exc
        self.invalidate()  # our own change: no need to wait for the notification
        return stored

    async def remove_rule(self, name: str) -> None:
        """Delete the rule; the ones after it move up. NotFound if there is none."""
        with map_db_errors("cannot remove routing rule"):
            async with self.pool.acquire() as conn, conn.transaction():
                await delete_rule(conn, name)
        self.invalidate()

    async def set_enabled(self, name: str, enabled: bool) -> None:
        _check_name(name)
        with map_db_errors("cannot update routing rule"):
            status = await self.pool.execute(
                "UPDATE routing_rules SET enabled = $2, updated_at = now() WHERE name = $1",
                name,
                enabled,
            )
        if status != "UPDATE 1":
            raise NotFound(f"no routing rule named {name!r}")
        self.invalidate()

    @staticmethod
    async def _renumber(conn: Any) -> None:
        await renumber(conn)


# --- connection-level operations, for callers that need them inside their own transaction
# (the admin API writes an audit row in the same one). Each takes RULES_LOCK for the rest of
# the transaction, so concurrent position changes from any process are serialised.


async def insert_rule(conn: Any, rule: Rule, *, position: int | None = None) -> Rule:
    """Insert at `position` (1 = first; None or past the end = last); return the stored rule."""
    if position is not None and (
        isinstance(position, bool) or not isinstance(position, int) or position < 1
    ):
        raise ValidationError("position", "a positive integer (1 = first)")
    await conn.execute("SELECT pg_advisory_xact_lock($1)", RULES_LOCK)
    if await conn.fetchval("SELECT 1 FROM routing_rules WHERE name = $1", rule.name):
        raise ValidationError("name", f"rule {rule.name} already exists")
    last = await conn.fetchval("SELECT coalesce(max(position), 0) FROM routing_rules")
    if position is None or position > last:
        position = last + 1
    else:
        await conn.execute(
            "UPDATE routing_rules SET position = position + 1, updated_at = now()"
            " WHERE position >= $1",
            position,
        )
    await conn.execute(
        f"INSERT INTO routing_rules ({RULE_COLUMNS})"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        rule.name,
        position,
        *rule_values(rule),
    )
    await renumber(conn)
    row = await conn.fetchrow(
        f"SELECT {RULE_COLUMNS} FROM routing_rules WHERE name = $1", rule.name
    )
    return rule_from_row(row)


async def delete_rule(conn: Any, name: str) -> None:
    """Delete a rule and close the gap; NotFound if there is none."""
    _check_name(name)
    await conn.execute("SELECT pg_advisory_xact_lock($1)", RULES_LOCK)
    status = await conn.execute("DELETE FROM routing_rules WHERE name = $1", name)
    if status != "DELETE 1":
        raise NotFound(f"no routing rule named {name!r}")
    await renumber(conn)


def rule_values(rule: Rule) -> tuple[Any, ...]:
    """The columns after name and position, in RULE_COLUMNS order."""
    return (
        rule.queue,
        rule.priority,
        list(rule.tags_any) or None,
        list(rule.tags_all) or None,
        rule.unknown_caller,
        rule.caller_prefix,
        rule.did,
        str(rule.when) if rule.when else None,
        str(rule.attr) if rule.attr else None,
        rule.enabled,
    )


async def renumber(conn: Any) -> None:
    """Positions 1..n in the current order, touching only rows that move."""
    await conn.execute(
        "UPDATE routing_rules r SET position = o.n, updated_at = now()"
        " FROM (SELECT name, row_number() OVER (ORDER BY position, name) AS n"
        "       FROM routing_rules) o"
        " WHERE r.name = o.name AND r.position <> o.n"
    )
