"""SQL for call records: end events -> call_records + channels + service history (the
outbox row follows by trigger, sql/030), Cdrs -> pbx_cdrs, and a record read back as the
JSON the CRM connector receives. Every function takes a connection; the caller owns the
transaction and maps driver errors.

A batch costs two round trips, whatever its size (arrays through `unnest`): one query looks
up every call's routing decision, agents, caller's customer and filed dispositions; one
statement takes the calls' record locks, checks that look-up still holds and upserts the
records, their channels, the customers' service history and the Cdrs (sql/120). A burst of
20,000 call ends once took 2-3 round trips each and did not finish in nine minutes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.crm.phones import to_e164
from bridge.errors import ValidationError
from bridge.models import CallEnded
from bridge.records.cdr import PbxCdr

# The region national numbers read in: one for every call, or a call id's own PBX's.
Region = str | Callable[[str], str]

__all__ = [
    "PROVISIONAL",
    "RECORD_FIELDS",
    "Region",
    "load_record",
    "lock_call",
    "record_json",
    "store_cdr",
    "store_cdrs",
    "write_ended",
    "write_ended_many",
]

MAX_TEXT = 1024


def clean(value: str | None, limit: int = MAX_TEXT) -> str:
    """Text PostgreSQL accepts: no NUL, valid UTF-8 (lone surrogates replaced), capped."""
    text = (value or "").replace("\x00", "")
    return text.encode("utf-8", "replace").decode("utf-8")[:limit]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def lock_call(conn: Any, call_id: str) -> None:
    """Serialise the writers of one call's record (this module and the agent page's
    dispositions, bridge/pops/disposition.py) until the transaction ends, so a disposition
    filed while the record is being written is never lost between them."""
    await conn.execute(_LOCK, [call_id])


# The same lock for a whole batch, taken in one order so two writers never deadlock (the
# functions of sql/120_call_records_lookup.sql take it the same way).
_LOCK = """
SELECT pg_advisory_xact_lock(hashtextextended('call-record:' || id, 0))
FROM (SELECT DISTINCT unnest($1::text[]) AS id ORDER BY 1) AS ids
"""

# A live record whose end the bridge never saw: closed after `[pbx] max_call_s`, or ended by a
# resync after the AMI link dropped. The PBX's Cdrs know better, so reconciliation may replace
# it. (A record rebuilt from Cdrs lists `caller` as inferred too; a live one never does.)
PROVISIONAL = "('ended_at' = ANY(r.inferred) AND NOT 'caller' = ANY(r.inferred))"

# Several bridges on one PBX each see a call end and each write it (issue 18): under the
# call's lock the writes come one after the other, and a finished record is replaced only by
# one that observed as much. An instance that joined mid-call marks what it did not see
# (`started_at`, `answered_at`...) inferred; its end never replaces the record of one that saw
# the whole call, whichever commits first. Equal observations: the later write wins (the
# same event replayed changes nothing).
_SAW_LESS = """WHERE r.ended_at IS NULL
    OR NOT (r.inferred <@ EXCLUDED.inferred AND NOT EXCLUDED.inferred <@ r.inferred)"""

# sql/120_call_records_lookup.sql: each call's first routing decision (by its linkedid or any
# of its channels), the customer owning the caller's number (used when there is no
# decision), the agents' ids by device, and each agent's own disposition filed so far (the
# last one filed is the record's pair), with a stamp of it all. `_LOOKUP` reads without the
# calls' locks; `_LOCK_AND_LOOKUP` takes them first (`_LOCK`), then reads.
_LOOKUP = "SELECT * FROM call_records_lookup_rows($1, $2, $3, $4, $5)"
_LOCK_AND_LOOKUP = "SELECT * FROM call_records_lookup($1, $2, $3, $4, $5)"

# One round trip for a whole batch: the calls' locks and a check that the look-up the rows
# were built from still holds (`call_records_unchanged`, before anything is written), then
# the records, their channels (only for records written), the service history of those with
# a customer (with the disposition and notes the agent page may already have filed) and the
# batch's Cdrs. A single row with a NULL call_id says the look-up changed: nothing but the
# Cdrs was written.
_UPSERT = """
WITH unchanged AS (
    SELECT call_records_unchanged($1, $42, $43, $44, $45, $46) AS yes
), input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[], $10::timestamptz[],
        $11::integer[], $12::integer[], $13::text[], $14::text[], $15::boolean[],
        $16::text[], $17::text[], $18::text[], $19::text[], $20::text[])
    AS t(call_id, caller, customer_id, did, queue, rule, agents, started_at, answered_at,
         ended_at, duration_s, talk_s, outcome, recording_path, degraded, inferred,
         direction, source, disposition, notes)
), up AS (
INSERT INTO call_records AS r (call_id, caller, customer_id, did, queue, rule, agents,
    started_at, answered_at, ended_at, duration_s, talk_s, outcome, recording_path,
    degraded, inferred, direction, source, disposition, notes)
SELECT call_id, caller, customer_id, did, queue, rule, agents::jsonb, started_at,
    answered_at, ended_at, duration_s, talk_s, outcome, recording_path, degraded,
    ARRAY(SELECT jsonb_array_elements_text(inferred::jsonb)), direction, source,
    disposition, notes
FROM input
WHERE (SELECT yes FROM unchanged)
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
RETURNING r.call_id, r.disposition, r.notes
), channels AS (
INSERT INTO call_record_channels (uniqueid, call_id)
SELECT ch.uniqueid, ch.call_id FROM unnest($21::text[], $22::text[]) AS ch(uniqueid, call_id)
WHERE ch.call_id IN (SELECT call_id FROM up)
ON CONFLICT (uniqueid) DO UPDATE SET call_id = EXCLUDED.call_id
), history AS (
INSERT INTO service_history (customer_id, call_id, kind, occurred_at, agent_id, summary,
    outcome, disposition, notes)
SELECT h.customer_id, h.call_id, 'call', h.occurred_at, h.agent_id, h.summary, h.outcome,
    up.disposition, up.notes
FROM unnest($23::text[], $24::text[], $25::timestamptz[], $26::text[], $27::text[],
    $28::text[]) AS h(call_id, customer_id, occurred_at, agent_id, summary, outcome)
JOIN up ON up.call_id = h.call_id
WHERE EXISTS (SELECT 1 FROM customers WHERE id = h.customer_id)
ON CONFLICT (call_id) DO UPDATE SET customer_id = EXCLUDED.customer_id,
    occurred_at = EXCLUDED.occurred_at, agent_id = EXCLUDED.agent_id,
    summary = EXCLUDED.summary, outcome = EXCLUDED.outcome,
    disposition = EXCLUDED.disposition, notes = EXCLUDED.notes
), cdrs AS (
{insert_cdrs}
)
SELECT call_id FROM up
UNION ALL
SELECT NULL FROM unchanged WHERE NOT yes
"""


def _direction(summary: Any) -> str:
    """'outbound' (an agent's side dialled out, click-to-call), 'internal' (agents only), else
    'inbound'."""
    direction = getattr(summary, "direction", "inbound")
    return direction if direction in ("outbound", "internal") else "inbound"


_KIND = {"inbound": "Inbound call", "outbound": "Outbound call", "internal": "Internal call"}


def _history_summary(
    queue: str | None, outcome: str, agents: list[dict[str, Any]], direction: str = "inbound"
) -> str:
    """The card's history line: which way the call went (a click-to-call is outbound), where
    and who talked."""
    kind = _KIND.get(direction, _KIND["inbound"])
    where = f" via queue {queue}" if queue else ""
    if outcome == "answered" and agents:
        who = ", ".join(f"{a['agent']} ({a['talk_s']} s)" for a in agents)
        return f"{kind}{where}, answered by {who}"
    return f"{kind}{where}, {outcome}"


@dataclass(frozen=True, slots=True)
class _Call:
    """One end event, checked and cleaned for SQL."""

    event: CallEnded
    call_id: str
    uniqueids: list[str]
    devices: list[str]
    e164: str | None


def _prepare(event: CallEnded, region: Region) -> _Call:
    call_id = clean(event.call_id, 1000)
    if not call_id or len(call_id) > 150:
        # Truncating could merge two calls into one row: refuse instead (the writer sets
        # the entry aside in rejected.jsonl).
        raise ValidationError("call_id", "empty or longer than 150 characters")
    s = event.summary
    uniqueids = sorted({clean(u, 150) for u in (*s.uniqueids, call_id) if u})
    # `<pbx>:<device>` with several PBXs (sql/100_agents_pbx.sql): 16 + 1 + 64 characters.
    devices = [clean(a.device, 81) for a in s.agents]
    own = region if isinstance(region, str) else region(call_id)
    return _Call(event, call_id, uniqueids, devices, to_e164(s.caller.strip(), own))


async def write_ended(
    conn: Any,
    event: CallEnded,
    *,
    only_missing: bool = False,
    source: str = "live",
    region: Region,
) -> bool:
    """Upsert the record of one finished call (see `write_ended_many`). Returns whether a
    row was written."""
    written = await write_ended_many(
        conn, [event], only_missing=only_missing, source=source, region=region
    )
    return bool(written)


async def write_ended_many(
    conn: Any,
    events: list[CallEnded],
    *,
    only_missing: bool = False,
    source: str = "live",
    region: Region,
    cdrs: Sequence[PbxCdr] = (),
) -> set[str]:
    """Upsert the records of finished calls in two round trips (look up, then lock, check
    and upsert), and keep `cdrs` (as `store_cdrs`) with them. The upsert is one statement,
    so no transaction is needed; inside one, it holds the locks to its end.

    Keyed by call_id, so replaying events (from the spool, after a crash) changes nothing;
    the same call twice in `events` is written once, as its last event says. Each call's
    record lock (`lock_call`) is held to the end of the transaction, so a disposition filed
    meanwhile lands in the record. `only_missing` (backfill from Cdrs): never replace a
    finished record, only fill a missing one (or one holding just a disposition) or a
    `PROVISIONAL` one. `source`: 'live' (the AMI link's end event) or 'reconciled' (rebuilt
    from CDRs). `region` ([pbx] default_region, or a call id's own PBX's region:
    `PbxRegions.of_call`) reads a caller's or dialled number written without a country code
    (`bridge.crm.phones.to_e164`). Returns the call ids written. A
    `ValidationError` (a call id no row may hold) fails the whole batch: the writer then
    retries entry by entry and sets that one aside."""
    if source not in {"live", "reconciled"}:
        raise ValidationError("source", "live or reconciled")
    calls = list({c.call_id: c for c in (_prepare(e, region) for e in events)}.values())
    if not calls:
        await store_cdrs(conn, cdrs)
        return set()
    lookup = (
        [c.call_id for c in calls],
        [c.e164 for c in calls],
        [i for i, c in enumerate(calls, start=1) for _ in c.uniqueids],
        [u for c in calls for u in c.uniqueids],
        sorted({d for c in calls for d in c.devices}),
    )
    # Optimistically without the locks: two round trips and no transaction needed, as the
    # upsert takes the locks and writes only if the look-up still holds. Should a filing
    # (or a decision...) have come meanwhile, again under the locks from the start.
    found = await conn.fetch(_LOOKUP, *lookup)
    written = await _upsert(conn, calls, found, lookup, only_missing, source, cdrs)
    if written is None:
        async with conn.transaction():
            found = await conn.fetch(_LOCK_AND_LOOKUP, *lookup)
            written = await _upsert(conn, calls, found, lookup, only_missing, source, ())
        if written is None:  # cannot be: the look-up was made under the same locks
            raise RuntimeError("call records' look-up changed under their locks")
    return written


async def _upsert(
    conn: Any,
    calls: list[_Call],
    found: list[Any],
    lookup: tuple[list[Any], ...],
    only_missing: bool,
    source: str,
    cdrs: Sequence[PbxCdr],
) -> set[str] | None:
    """`_UPSERT` of `calls` as `found` says; None (nothing but `cdrs` written) if the look-up
    no longer gives `found`."""
    by_device: dict[str, str] = found[0]["agent_ids"] or {}  # one row per call
    rows = [_record_row(c, f, by_device, source) for c, f in zip(calls, found, strict=True)]
    owner: dict[str, str] = {}  # uniqueid -> call id; the last call naming a channel has it
    for c in calls:
        owner.update(dict.fromkeys(c.uniqueids, c.call_id))
    history = [r for r in rows if r["customer_id"]]
    written = await conn.fetch(
        _UPSERT_MISSING if only_missing else _UPSERT_SAW_MORE,
        *([r[k] for r in rows] for k in RECORD_FIELDS),
        list(owner),
        list(owner.values()),
        [r["call_id"] for r in history],
        [r["customer_id"] for r in history],
        [r["started_at"] for r in history],
        [r["history_agent"] for r in history],
        [r["history_summary"] for r in history],
        [r["outcome"] for r in history],
        *_cdr_columns(cdrs),
        *lookup[1:],
        [f["stamp"] for f in found],
    )
    ids = {r["call_id"] for r in written}
    return None if None in ids else ids


# The columns of a call record (CONTRACT "Call records"), in the upsert's parameter order.
RECORD_FIELDS = (
    "call_id",
    "caller",
    "customer_id",
    "did",
    "queue",
    "rule",
    "agents",
    "started_at",
    "answered_at",
    "ended_at",
    "duration_s",
    "talk_s",
    "outcome",
    "recording_path",
    "degraded",
    "inferred",
    "direction",
    "source",
    "disposition",
    "notes",
)


def _record_row(call: _Call, found: Any, by_device: dict[str, str], source: str) -> dict[str, Any]:
    """The call_records values of one call, from its summary and what the lookup found."""
    s = call.event.summary
    decision = found if found["rule"] is not None else None
    inferred = set(s.inferred)
    agents = [
        {
            "agent": by_device.get(device, device),
            "answered_at": _iso(leg.answered_at),
            "talk_s": leg.talk_s,
        }
        for device, leg in zip(call.devices, s.agents, strict=True)
    ]
    filed = {f["agent_id"]: f for f in found["filed"] or []}
    last = list(filed.values())[-1] if filed else None
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
    return {
        "call_id": call.call_id,
        "caller": clean(s.caller, 200),
        "customer_id": customer_id,
        "did": clean(s.did, 200),
        "queue": queue,
        "rule": rule,
        "agents": json.dumps(agents),
        "started_at": s.started_at,
        "answered_at": s.answered_at,
        "ended_at": s.ended_at,
        "duration_s": max(0, s.duration_s),
        "talk_s": max(0, s.talk_s),
        "outcome": outcome,
        "recording_path": recording,
        "degraded": degraded,
        "inferred": json.dumps(sorted(clean(i, 64) for i in inferred)),
        "direction": _direction(s),
        "source": source,
        "disposition": last["disposition"] if last else None,
        "notes": last["notes"] if last else None,
        "history_agent": agents[-1]["agent"] if agents else None,
        "history_summary": _history_summary(queue, outcome, agents, _direction(s)),
    }


async def store_cdr(conn: Any, cdr: PbxCdr) -> None:
    """Keep one Cdr; a re-sent one (same uniqueid, destination, start) is ignored."""
    await store_cdrs(conn, [cdr])


async def store_cdrs(conn: Any, cdrs: Sequence[PbxCdr]) -> None:
    """Keep Cdrs in one round trip; re-sent ones (same uniqueid, destination, start) are
    ignored, within the batch too."""
    if cdrs:
        await conn.execute(_INSERT_CDRS, *_cdr_columns(cdrs))


def _insert_cdrs(first: int) -> str:
    """The INSERT of Cdrs given as 13 arrays from parameter `$first` on (alone, or a CTE of
    the records' upsert)."""
    types = ("text",) * 5 + ("timestamptz",) * 3 + ("integer",) * 2 + ("text",) * 3
    arrays = ", ".join(f"${first + k}::{t}[]" for k, t in enumerate(types))
    return (
        "INSERT INTO pbx_cdrs (uniqueid, channel, destination_channel, source, destination,"
        " start_time, answer_time, end_time, duration_s, billable_s, disposition,"
        f" last_application, last_data) SELECT * FROM unnest({arrays})"
        " ON CONFLICT (uniqueid, destination_channel, start_time) DO NOTHING"
    )


_INSERT_CDRS = _insert_cdrs(1)
_CDRS_AFTER_RECORDS = _insert_cdrs(29)  # after the upsert's 28 parameters
_UPSERT_SAW_MORE = _UPSERT.format(where=_SAW_LESS, insert_cdrs=_CDRS_AFTER_RECORDS)
_UPSERT_MISSING = _UPSERT.format(
    where=f"WHERE r.ended_at IS NULL OR {PROVISIONAL}", insert_cdrs=_CDRS_AFTER_RECORDS
)


def _cdr_columns(cdrs: Sequence[PbxCdr]) -> list[list[Any]]:
    """The 13 column arrays of `_INSERT_CDRS`."""
    columns: list[list[Any]] = [[] for _ in range(13)]
    for cdr in cdrs:
        values = (
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
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    return columns


RECORD_COLUMNS = ", ".join(RECORD_FIELDS)  # for SELECT lists


def record_json(row: Any) -> dict[str, Any]:
    """A call_records row as the JSON document of CONTRACT "Call records"."""
    out: dict[str, Any] = {}
    for key in RECORD_FIELDS:
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
