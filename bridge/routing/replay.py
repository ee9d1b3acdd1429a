"""`crm-bridge rules test --replay N`: the last N inbound calls against today's rules.

Each recorded call is decided again as if it rang now with the rules and customer data of
now, but at the time it really rang (so `--when` windows see the original hour, in the
rules' zone), and compared with the queue and rule it was given. The admin sees which calls
a rule change would send elsewhere before a caller does. Nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from bridge.crm.directory import PostgresDirectory
from bridge.crm.phones import to_e164
from bridge.db.errors import map_db_errors
from bridge.models import Decision, InboundCall
from bridge.routing.decide import decide
from bridge.routing.rules import Rule

MAX_REPLAY = 10_000


@dataclass(frozen=True, slots=True)
class Replayed:
    call_id: str
    at: datetime
    caller: str
    was_queue: str | None
    was_rule: str | None
    now: Decision

    @property
    def differs(self) -> bool:
        return (self.was_queue, self.was_rule) != (self.now.queue, self.now.rule)

    def describe(self) -> str:
        return (
            f"{self.call_id} {self.at.isoformat()} {self.caller or '(no caller id)'}:"
            f" was {self.was_queue or '-'} (rule {self.was_rule or '-'}),"
            f" now {self.now.queue} (rule {self.now.rule})"
        )


async def replay(
    pool: asyncpg.Pool[Any],
    rules: list[Rule],
    count: int,
    *,
    region: str,
    tz: ZoneInfo,
    default_queue: str,
    default_priority: int = 0,
) -> list[Replayed]:
    """The last `count` finished inbound calls, newest first, each decided again."""
    with map_db_errors("cannot replay calls"):
        rows = await pool.fetch(
            "SELECT call_id, caller, did, queue, rule, coalesce(started_at, ended_at) AS at"
            " FROM call_records WHERE ended_at IS NOT NULL AND direction = 'inbound'"
            " ORDER BY coalesce(started_at, ended_at) DESC, call_id DESC LIMIT $1",
            max(1, min(count, MAX_REPLAY)),
        )
        directory = PostgresDirectory(pool)
        out = []
        for row in rows:
            caller = to_e164(row["caller"], region)
            customer = await directory.lookup(caller) if caller else None
            call = InboundCall(
                raw_caller=row["caller"],
                caller=caller,
                caller_name="",
                did=row["did"],
                at=row["at"],
            )
            decision = decide(
                call,
                customer,
                rules,
                default_queue=default_queue,
                default_priority=default_priority,
                tz=tz,
            )
            out.append(
                Replayed(
                    row["call_id"], row["at"], row["caller"], row["queue"], row["rule"], decision
                )
            )
    return out
