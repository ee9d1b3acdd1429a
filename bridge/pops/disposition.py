"""Filing a call's disposition from the agent page.

`save_disposition(pool, call_id, agent, disposition, notes)`:
- disposition is one of resolved, follow_up, complaint; notes are text, control characters
  (except newline and tab) removed, at most `MAX_NOTES` characters;
- only an agent the call was popped to (rung, answered, transferred to: table
  `call_participants`), or listed in the call record's `agents`, may file it; supervisors and
  admins may file any call (`NotYourCall` otherwise);
- upserts into `call_records` so it works before or after the call-record writer's row, and
  copies it onto the customer's `service_history` row for the call when there is one.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from bridge.crm.agents import Agent
from bridge.errors import BridgeError, CrmUnavailable, ValidationError
from bridge.pops.permissions import FULL_ROLES

__all__ = ["DISPOSITIONS", "MAX_NOTES", "NotYourCall", "clean_notes", "save_disposition"]

DISPOSITIONS = ("resolved", "follow_up", "complaint")
MAX_NOTES = 4000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_CALL_ID = re.compile(r"[A-Za-z0-9_.:-]{1,150}")
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


class NotYourCall(BridgeError):
    """The agent was neither rung for nor answered this call (HTTP 403)."""


def clean_notes(notes: Any) -> str:
    if notes is None:
        return ""
    if not isinstance(notes, str):
        raise ValidationError("notes", "must be text")
    text = _CONTROL.sub("", notes.replace("\r\n", "\n").replace("\r", "\n"))
    if len(text) > MAX_NOTES:
        raise ValidationError("notes", f"at most {MAX_NOTES} characters")
    return text.strip()


def check_call_id(call_id: Any) -> str:
    if not isinstance(call_id, str) or not _CALL_ID.fullmatch(call_id):
        raise ValidationError("call_id", "1-150 letters, digits, '_', '.', ':' or '-'")
    return call_id


async def may_file(conn: Any, call_id: str, agent: Agent) -> bool:
    if agent.role in FULL_ROLES:
        return True
    row = await conn.fetchrow(
        "SELECT EXISTS (SELECT 1 FROM call_participants WHERE call_id = $1 AND agent_id = $2)"
        " OR EXISTS (SELECT 1 FROM call_records WHERE call_id = $1 AND agents @> $3::jsonb)"
        " AS ok",
        call_id,
        agent.id,
        [{"agent": agent.id}],  # the pool encodes JSON itself
    )
    return bool(row["ok"])


async def save_disposition(
    pool: asyncpg.Pool[Any], call_id: str, agent: Agent, disposition: Any, notes: Any
) -> None:
    call_id = check_call_id(call_id)
    if disposition not in DISPOSITIONS:
        raise ValidationError("disposition", "one of resolved, follow_up, complaint")
    text = clean_notes(notes)
    try:
        async with pool.acquire() as conn, conn.transaction():
            if not await may_file(conn, call_id, agent):
                raise NotYourCall(f"agent {agent.id} was not rung for call {call_id}")
            await conn.execute(
                "INSERT INTO call_records (call_id, disposition, notes) VALUES ($1, $2, $3)"
                " ON CONFLICT (call_id) DO UPDATE SET disposition = EXCLUDED.disposition,"
                " notes = EXCLUDED.notes, updated_at = now()",
                call_id,
                disposition,
                text,
            )
            await conn.execute(
                "UPDATE service_history SET disposition = $2, notes = $3 WHERE call_id = $1",
                call_id,
                disposition,
                text,
            )
    except _DB_ERRORS as exc:
        raise CrmUnavailable(f"cannot save the disposition: {exc}") from exc
