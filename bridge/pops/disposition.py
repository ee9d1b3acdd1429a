"""Filing a call's disposition from the agent page: each agent files its own part.

`save_disposition(pool, call_id, actor, disposition, notes, agent=None)`:
- disposition is one of resolved, follow_up, complaint; notes are text, control characters
  (except newline and tab) removed, at most `MAX_NOTES` characters;
- the call must exist: a call record, a pop (`call_participants`) or a routing decision for
  that call id (`CallNotFound`, HTTP 404); nothing is ever written for an unknown call;
- an agent files only its own part, and only if it talked on the call: answered it or took it
  by transfer (`call_participants`), or is listed in the record's `agents`. Rung only, not
  involved, or naming another agent: `NotYourCall` (HTTP 403);
- a supervisor or admin may amend any agent's part (`agent`, default the last agent who
  talked); every filing is an `audit_log` row with before and after, in the same
  transaction (`disposition.file` for an agent's own part, `disposition.amend` for another's).

Where it goes: `call_dispositions` keeps each agent's pair, so a disposition filed while the
call is live waits there for the record (`bridge/records/store.py` merges it in). When the
record exists, its `agents` entries for that agent, its top-level pair (the last one filed)
and the customer's `service_history` row change in the same transaction. Both sides take the
call's advisory lock (`lock_call`), so a record written at the same moment cannot miss it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import asyncpg

from bridge.crm import audit
from bridge.crm.agents import Agent
from bridge.db.errors import map_db_errors
from bridge.errors import BridgeError, NotFound, ValidationError
from bridge.pops.permissions import FULL_ROLES
from bridge.records.store import lock_call

__all__ = [
    "DISPOSITIONS",
    "MAX_NOTES",
    "CallNotFound",
    "Filed",
    "NotYourCall",
    "clean_notes",
    "save_disposition",
]

DISPOSITIONS = ("resolved", "follow_up", "complaint")
MAX_NOTES = 4000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_CALL_ID = re.compile(r"[A-Za-z0-9_.:-]{1,150}")
_AGENT_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


class NotYourCall(BridgeError):
    """The agent did not talk on this call, or names another agent's part (HTTP 403)."""


class CallNotFound(NotFound):
    """No record, pop or routing decision knows this call id (HTTP 404)."""


@dataclass(frozen=True, slots=True)
class Filed:
    call_id: str
    agent: str  # whose part
    disposition: str
    notes: str
    filed_by: str


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


def _check_agent(agent: Any) -> str | None:
    if agent is None:
        return None
    if not isinstance(agent, str) or not _AGENT_ID.fullmatch(agent):
        raise ValidationError("agent", "an agent id: 1-64 letters, digits, '_', '.', '@' or '-'")
    return agent


_FACTS = """
SELECT
  (SELECT agents FROM call_records WHERE call_id = $1) AS record_agents,
  EXISTS (SELECT 1 FROM call_records WHERE call_id = $1) AS has_record,
  EXISTS (SELECT 1 FROM call_participants WHERE call_id = $1) AS was_popped,
  EXISTS (SELECT 1 FROM route_decisions WHERE linkedid = $1 OR uniqueid = $1) AS was_routed,
  COALESCE((SELECT array_agg(agent_id ORDER BY first_at, agent_id) FROM (
      SELECT agent_id, min(at) AS first_at FROM call_participants
       WHERE call_id = $1 AND how IN ('answered', 'transferred') GROUP BY agent_id) t),
    '{}') AS talked
"""


def _talkers(record_agents: Any, talked: list[str]) -> list[str]:
    """Who talked, in order: the record's `agents` first (it is the call's own order), then
    anyone the pops saw answer or take a transfer that the record does not list."""
    order: list[str] = []
    for entry in record_agents or []:
        who = entry.get("agent") if isinstance(entry, dict) else None
        if isinstance(who, str) and who not in order:
            order.append(who)
    order.extend(a for a in talked if a not in order)
    return order


def _whose_part(actor: Agent, named: str | None, talkers: list[str], call_id: str) -> str:
    if actor.role not in FULL_ROLES:
        if named is not None and named != actor.id:
            raise NotYourCall(f"agent {actor.id} may file only its own part of call {call_id}")
        if actor.id not in talkers:
            raise NotYourCall(f"agent {actor.id} did not talk on call {call_id}")
        return actor.id
    if named is None:
        if actor.id in talkers and talkers[-1] == actor.id:
            return actor.id
        if not talkers:
            raise ValidationError("agent", f"nobody talked on call {call_id}: no part to amend")
        return talkers[-1]
    if named not in talkers:
        raise ValidationError("agent", f"agent {named} did not talk on call {call_id}")
    return named


_MERGE_RECORD = """
UPDATE call_records SET
  agents = (SELECT COALESCE(jsonb_agg(
              CASE WHEN e->>'agent' = $2
                   THEN e || jsonb_build_object('disposition', $3::text, 'notes', $4::text)
                   ELSE e END ORDER BY n), '[]'::jsonb)
              FROM jsonb_array_elements(agents) WITH ORDINALITY AS t(e, n)),
  disposition = $3, notes = $4, updated_at = now()
WHERE call_id = $1
"""


async def save_disposition(
    pool: asyncpg.Pool[Any],
    call_id: Any,
    actor: Agent,
    disposition: Any,
    notes: Any,
    agent: Any = None,
) -> Filed:
    call_id = check_call_id(call_id)
    if disposition not in DISPOSITIONS:
        raise ValidationError("disposition", "one of resolved, follow_up, complaint")
    text = clean_notes(notes)
    named = _check_agent(agent)
    with map_db_errors("cannot save the disposition"):
        async with pool.acquire() as conn, conn.transaction():
            await lock_call(conn, call_id)
            facts = await conn.fetchrow(_FACTS, call_id)
            assert facts is not None  # one row, always
            if not (facts["has_record"] or facts["was_popped"] or facts["was_routed"]):
                raise CallNotFound(f"no call {call_id}")
            talkers = _talkers(facts["record_agents"], list(facts["talked"]))
            whose = _whose_part(actor, named, talkers, call_id)
            before = await conn.fetchrow(
                "SELECT disposition, notes, filed_by FROM call_dispositions"
                " WHERE call_id = $1 AND agent_id = $2",
                call_id,
                whose,
            )
            await conn.execute(
                "INSERT INTO call_dispositions (call_id, agent_id, disposition, notes, filed_by)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (call_id, agent_id) DO UPDATE SET"
                " disposition = EXCLUDED.disposition, notes = EXCLUDED.notes,"
                " filed_by = EXCLUDED.filed_by, filed_at = clock_timestamp()",
                call_id,
                whose,
                disposition,
                text,
                actor.id,
            )
            if facts["has_record"]:
                await conn.execute(_MERGE_RECORD, call_id, whose, disposition, text)
                await conn.execute(
                    "UPDATE service_history SET disposition = $2, notes = $3 WHERE call_id = $1",
                    call_id,
                    disposition,
                    text,
                )
            # Every filing is in the trail (`GET /api/audit`): an agent's own part as
            # disposition.file, a supervisor's or admin's change of it as disposition.amend.
            await audit.record(
                conn,
                actor=actor.id,
                action="disposition.amend" if whose != actor.id else "disposition.file",
                target_type="call",
                target_id=call_id,
                before=None if before is None else {"agent": whose, **dict(before)},
                after={
                    "agent": whose,
                    "disposition": disposition,
                    "notes": text,
                    "filed_by": actor.id,
                },
            )
    return Filed(call_id, whose, disposition, text, actor.id)
