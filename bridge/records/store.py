"""SQL for call records: one end event -> call_records + channels + service history (the
outbox row follows by trigger, sql/030), Cdrs -> pbx_cdrs, and a record read back as the
JSON the CRM connector receives. Every function takes a connection; the caller owns the
transaction and maps driver errors.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bridge.crm.phones import normalise
from bridge.errors import ValidationError
from bridge.models import CallEnded
from bridge.records.cdr import PbxCdr

__all__ = ["load_record", "lock_call", "record_json", "store_cdr", "write_ended"]

MAX_TEXT = 1024


def clean(value: str | None, limit: int = MAX_TEXT) -> str:
    """Text PostgreSQL accepts: no NUL, valid UTF-8 (lone surrogates replaced), capped."""
    text = (value or "").replace("\x00", "")
    return text.encode("utf-8", "replace").decode("utf-8")[:limit]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _e164(caller: str, *, dialled: bool = False, region: str = "US") -> str | None:
    """The caller as E.164 when it is written internationally (+...); a national number
    would need the PBX's region, which only the routing decision had. An outbound call's
    number is what the agent dialled (no routing decision): read in the PBX's region."""
    caller = caller.strip()
    if dialled:
        return normalise(caller, region)
    return normalise(caller, "US") if caller.startswith("+") else None


async def lock_call(conn: Any, call_id: str) -> None:
    """Serialise the writers of one call's record (this module and the agent page's
    dispositions, bridge/pops/disposition.py) until the transaction ends, so a disposition
    filed while the record is being written is never lost between them."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('call-record:' || $1, 0))", call_id
    )


# Each agent's own disposition filed so far; the last one filed is the record's pair.
_DISPOSITIONS = """
SELECT agent_id, disposition, notes FROM call_dispositions WHERE call_id = $1
ORDER BY filed_at, agent_id
"""


# One round trip: the call's first routing decision, its agents' ids by device, and the
# customer owning the caller's number (used when there is no decision).
_LOOKUP = """
SELECT d.customer_id, d.rule, d.queue, d.recording, d.degraded,
       (SELECT COALESCE(json_object_agg(a.device, a.id), '{}'::json)
          FROM agents a WHERE a.device = ANY($3::text[])) AS agent_ids,
       (SELECT p.customer_id FROM customer_phones p WHERE p.e164 = $4) AS phone_customer
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT customer_id, rule, queue, recording, degraded
    FROM route_decisions
    WHERE linkedid = $1 OR uniqueid = ANY($2::text[])
    ORDER BY decided_at, uniqueid
    LIMIT 1
) AS d ON true
"""

# A live record whose end the bridge never saw: closed after `[pbx] max_call_s`, or ended by a
# resync after the AMI link dropped. The PBX's Cdrs know better, so reconciliation may replace
# it. (A record rebuilt from Cdrs lists `caller` as inferred too; a live one never does.)
PROVISIONAL = "('ended_at' = ANY(r.inferred) AND NOT 'caller' = ANY(r.inferred))"

# One round trip: the record and its channels (the channels only if the record was written).
_UPSERT = """
WITH up AS (
INSERT INTO call_records AS r (call_id, caller, customer_id, did, queue, rule, agents,
    started_at, answered_at, ended_at, duration_s, talk_s, outcome, recording_path,
    degraded, inferred, direction, source, disposition, notes)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $18, $19, $20,
    $21)
ON CONFLICT (call_id) DO UPDATE SET
    caller = EXCLUDED.caller, customer_id = EXCLUDED.customer_id, did = EXCLUDED.did,
    queue = EXCLUDED.queue, rule = EXCLUDED.rule, agents = EXCLUDED.agents,
    started_at = EXCLUDED.started_at, answered_at = EXCLUDED.answered_at,
    ended_at = EXCLUDED.ended_at, duration_s = EXCLUDED.duration_s, talk_s = EXCLUDED.talk_s,
    outcome = EXCLUDED.outcome, recording_path = EXCLUDED.recording_path,
    degraded = EXCLUDED.degraded, inferred = EXCLUDED.inferred,
    direction = EXCLUDED.direction, source = EXCLUDED.source, updated_at = now(),
    -- disposition and notes come from the agent page (call_dispositions): kept if none filed
    disposition = COALESCE(EXCLUDED.disposition, r.disposition),
    notes = CASE WHEN EXCLUDED.disposition IS NULL THEN r.notes ELSE EXCLUDED.notes END
{where}
RETURNING disposition, notes
), channels AS (
INSERT INTO call_record_channels (uniqueid, call_id)
SELECT u, $1 FROM unnest($17::text[]) AS u WHERE EXISTS (SELECT 1 FROM up)
ON CONFLICT (uniqueid) DO UPDATE SET call_id = EXCLUDED.call_id
)
SELECT disposition, notes FROM up
"""

_HISTORY = """
INSERT INTO service_history (customer_id, call_id, kind, occurred_at, agent_id, summary,
    outcome, disposition, notes)
SELECT $1, $2, 'call', $3, $4, $5, $6, $7, $8
WHERE EXISTS (SELECT 1 FROM customers WHERE id = $1)
ON CONFLICT (call_id) DO UPDATE SET customer_id = EXCLUDED.customer_id,
    occurred_at = EXCLUDED.occurred_at, agent_id = EXCLUDED.agent_id,
    summary = EXCLUDED.summary, outcome = EXCLUDED.outcome,
    disposition = EXCLUDED.disposition, notes = EXCLUDED.notes
"""


def _direction(summary: Any) -> str:
    """'outbound' (an agent's side dialled out, click-to-call), 'internal' (agents only), else
    'inbound'."""
    direction = getattr(summary, "direction", "inbound")
    return direction if direction in ("outbound", "internal") else "inbound"


def _history_summary(queue: str | None, outcome: str, agents: list[dict[str, Any]]) -> str:
    where = f" via queue {queue}" if queue else ""
    if outcome == "answered" and agents:
        who = ", ".join(f"{a['agent']} ({a['talk_s']} s)" for a in agents)
        return f"Inbound call{where}, answered by {who}"
    return f"Inbound call{where}, {outcome}"


async def write_ended(
    conn: Any, event: CallEnded, *, only_missing: bool = False, source: str = "live"
) -> bool:
    """Upsert the record of one finished call. Run inside a transaction.

    `only_missing` (backfill from Cdrs): never replace a finished record, only fill a
    missing one (or one holding just a disposition) or a `PROVISIONAL` one. `source`: 'live'
    (the AMI link's end event) or 'reconciled' (rebuilt from CDRs). Returns whether a row was
    written."""
    if source not in {"live", "reconciled"}:
        raise ValidationError("source", "live or reconciled")
    s = event.summary
    call_id = clean(event.call_id, 1000)
    if not call_id or len(call_id) > 150:
        # Truncating could merge two calls into one row: refuse instead (the writer sets
        # the entry aside in rejected.jsonl).
        raise ValidationError("call_id", "empty or longer than 150 characters")
    uniqueids = sorted({clean(u, 150) for u in (*s.uniqueids, call_id) if u})
    devices = [clean(a.device, 64) for a in s.agents]
    await lock_call(conn, call_id)
    dialled = getattr(s, "direction", "inbound") == "outbound"
    found = await conn.fetchrow(
        _LOOKUP, call_id, uniqueids, devices, _e164(s.caller, dialled=dialled)
    )
    filed = {r["agent_id"]: r for r in await conn.fetch(_DISPOSITIONS, call_id)}
    last = list(filed.values())[-1] if filed else None
    by_device: dict[str, str] = found["agent_ids"] or {}
    decision = found if found["rule"] is not None else None
    inferred = set(s.inferred)
    agents = [
        {
            "agent": by_device.get(device, device),
            "answered_at": _iso(leg.answered_at),
            "talk_s": leg.talk_s,
        }
        for device, leg in zip(devices, s.agents, strict=True)
    ]
    for entry in agents:
        mine = filed.get(entry["agent"])
        entry["disposition"] = mine["disposition"] if mine else None
        entry["notes"] = mine["notes"] if mine else None
    queue = clean(s.queue, 80) if s.queue else None
    outcome = s.outcome if s.outcome in {"answered", "abandoned", "unanswered"} else "unanswered"
    # MixMonitor runs from before Queue(): nobody answered, nothing worth a path (empty file).
    answered = outcome == "answered"
    recording = clean(s.recording_path) if s.recording_path and answered else None
    customer_id = rule = None
    degraded = False
    if decision is not None:
        customer_id, rule, degraded = (
            decision["customer_id"],
            decision["rule"],
            decision["degraded"],
        )
        if queue is None and decision["queue"]:
            queue = decision["queue"]
            inferred.add("queue")
        if recording is None and decision["recording"] and answered:
            recording = decision["recording"]
            inferred.add("recording_path")
    elif found["phone_customer"] is not None:
        # No routing decision (the call was routed while the bridge was down, or by a
        # dialplan fallback): the caller's number still names the customer.
        customer_id = found["phone_customer"]
        inferred.add("customer_id")
    row = await conn.fetchrow(
        _UPSERT.format(where=f"WHERE r.ended_at IS NULL OR {PROVISIONAL}" if only_missing else ""),
        call_id,
        clean(s.caller, 200),
        customer_id,
        clean(s.did, 200),
        queue,
        rule,
        agents,
        s.started_at,
        s.answered_at,
        s.ended_at,
        max(0, s.duration_s),
        max(0, s.talk_s),
        outcome,
        recording,
        degraded,
        sorted(clean(i, 64) for i in inferred),
        uniqueids,
        _direction(s),
        source,
        last["disposition"] if last else None,
        last["notes"] if last else None,
    )
    if row is None:
        return False
    if customer_id:
        await conn.execute(
            _HISTORY,
            customer_id,
            call_id,
            s.started_at,
            agents[-1]["agent"] if agents else None,
            _history_summary(queue, outcome, agents),
            outcome,
            row["disposition"],
            row["notes"],
        )
    return True


async def store_cdr(conn: Any, cdr: PbxCdr) -> None:
    """Keep one Cdr; a re-sent one (same uniqueid, destination, start) is ignored."""
    await conn.execute(
        "INSERT INTO pbx_cdrs (uniqueid, channel, destination_channel, source, destination,"
        " start_time, answer_time, end_time, duration_s, billable_s, disposition,"
        " last_application, last_data)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        " ON CONFLICT (uniqueid, destination_channel, start_time) DO NOTHING",
        cdr.uniqueid,
        clean(cdr.channel),
        clean(cdr.destination_channel),
        clean(cdr.source),
        clean(cdr.destination),
        cdr.start_time,
        cdr.answer_time,
        cdr.end_time,
        cdr.duration_s,
        cdr.billable_s,
        clean(cdr.disposition, 64),
        clean(cdr.last_application, 128),
        clean(cdr.last_data),
    )


RECORD_COLUMNS = (
    "call_id, caller, customer_id, did, queue, rule, agents, started_at, answered_at,"
    " ended_at, duration_s, talk_s, outcome, recording_path, disposition, notes, degraded,"
    " inferred, direction, source"
)


def record_json(row: Any) -> dict[str, Any]:
    """A call_records row as the JSON document of CONTRACT "Call records"."""
    out: dict[str, Any] = {}
    for key in RECORD_COLUMNS.replace(" ", "").split(","):
        value = row[key]
        if isinstance(value, datetime):
            value = value.isoformat()
        elif key == "inferred":
            value = list(value or [])
        out[key] = value
    return out


async def load_record(conn: Any, call_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {RECORD_COLUMNS} FROM call_records WHERE call_id = $1", call_id
    )
    return record_json(row) if row is not None else None
