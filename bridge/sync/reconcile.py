"""Reconciliation: the PBX's CDRs and routing decisions vs call_records, then re-delivery.

1. **Backfill.** Every Cdr kept in `pbx_cdrs` and every CDR of the PBX's own store
   (`[pbx] cdr_source`: cdr_csv's Master.csv or a cdr_pgsql table, `bridge.sync.sources`),
   since `since`, is mapped to its call: through `call_record_channels` (the call is
   recorded), else the CDR's own linkedid (cdr_pgsql, cdr_csv with newcdrcolumns), else
   `route_decisions` (uniqueid -> linkedid), else its own UniqueID. Calls with a caller leg
   but no finished record - the bridge was down, restarted mid-call, or its AMI link dropped
   at hangup - or only a provisional one (its end not seen: closed after `[pbx] max_call_s`)
   - are rebuilt from their CDRs (`bridge.sync.cdrs`) and written with every field
   listed in `inferred` and `source = 'reconciled'`; the route decision adds customer, rule
   and the BRIDGE_RECORDING path.
   A call with a routing decision older than `max_call_s` (it must have ended) and still no
   record, or whose CDRs cannot make a record, is **unrebuildable**: kept in
   `call_reconcile_failures`, listed in the summary, counted in
   `crm_bridge_reconcile_unrebuildable_total` and alerted (kind `data_loss`) once - never
   silently skipped. Rebuilt later (the CDR arrived), it is marked resolved.
2. **Re-send.** Records the CRM never acknowledged (outbox `pending` or `dead`, or no outbox
   row at all) are queued again with fresh attempts, and delivered once by the connector
   now; what fails again stays queued for the live worker (or is dead-lettered at
   `[crm] max_attempts`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bridge.connectors.base import CrmConnector
from bridge.devices import DeviceMatcher
from bridge.errors import ValidationError
from bridge.records.cdr import PbxCdr
from bridge.records.outbox import OutboxWorker
from bridge.records.store import PROVISIONAL, write_ended
from bridge.sync import metrics
from bridge.sync.cdrs import (
    CallDecision,
    call_from_cdrs,
    group_cdrs,
    handset_index,
)
from bridge.sync.sources import CdrSource

__all__ = ["Backfill", "SyncSummary", "backfill", "resend", "run_sync"]

log = logging.getLogger(__name__)

DEFAULT_MAX_CALL_S = 14_400  # CONTRACT `[pbx] max_call_s`: no call lasts longer


class AlertSink(Protocol):
    def alert(
        self, kind: str, key: str, message: str, details: dict[str, Any] | None = None
    ) -> bool: ...


@dataclass(frozen=True, slots=True)
class Backfill:
    checked: int  # calls found in the CDRs
    backfilled: int  # of which had no record and were rebuilt
    unrebuildable: tuple[tuple[str, str], ...] = ()  # (call id, reason), this run
    source_problems: tuple[str, ...] = ()  # CDR store lines that could not be read
    source_problem_count: int = 0


@dataclass(frozen=True, slots=True)
class SyncSummary:
    checked: int  # calls found in the kept Cdrs and the CDR store
    backfilled: int  # of which had no record and were rebuilt
    resent: int  # records queued again for the CRM
    delivered: int  # of those, delivered in this run
    dead_lettered: int  # moved to the dead-letter table in this run
    unrebuildable: tuple[tuple[str, str], ...] = field(default=())
    source_problems: tuple[str, ...] = field(default=())
    source_problem_count: int = 0

    def line(self) -> str:
        return (
            f"checked {self.checked}, backfilled {self.backfilled}, resent {self.resent}"
            f" (delivered {self.delivered}), dead-lettered {self.dead_lettered},"
            f" unrebuildable {len(self.unrebuildable)},"
            f" unreadable CDR lines {self.source_problem_count}"
        )


_CDRS = """
SELECT uniqueid, channel, destination_channel, source, destination, start_time, answer_time,
       end_time, duration_s, billable_s, disposition, last_application, last_data
FROM pbx_cdrs
WHERE ($1::timestamptz IS NULL OR COALESCE(end_time, received_at) >= $1)
  AND starts_with(uniqueid, $2)
ORDER BY id
"""


_UNRECORDED_DECISIONS = """
SELECT COALESCE(NULLIF(d.linkedid, ''), d.uniqueid) AS call_id, min(d.decided_at) AS decided_at
FROM route_decisions d
WHERE ($1::timestamptz IS NULL OR d.decided_at >= $1) AND d.decided_at < $2
  AND starts_with(COALESCE(NULLIF(d.linkedid, ''), d.uniqueid), $3)
  AND NOT EXISTS (SELECT 1 FROM call_records r
                  WHERE r.call_id = COALESCE(NULLIF(d.linkedid, ''), d.uniqueid)
                    AND r.ended_at IS NOT NULL)
  AND NOT EXISTS (SELECT 1 FROM call_record_channels c JOIN call_records r USING (call_id)
                  WHERE c.uniqueid = d.uniqueid AND r.ended_at IS NOT NULL)
GROUP BY 1
"""

_FAILED = """
INSERT INTO call_reconcile_failures AS f (call_id, reason) VALUES ($1, $2)
ON CONFLICT (call_id) DO UPDATE SET reason = EXCLUDED.reason, last_seen = now(),
    resolved_at = NULL
RETURNING (xmax = 0) AS first_time, (f.resolved_at IS NULL) AS open
"""


def _merge(kept: list[PbxCdr], extra: list[PbxCdr]) -> list[PbxCdr]:
    """Kept Cdrs plus the store's, each CDR once (the store's carries linkedid)."""
    seen: dict[tuple[str, str, datetime | None], PbxCdr] = {}
    for cdr in (*extra, *kept):
        key = (cdr.uniqueid, cdr.destination_channel, cdr.start_time)
        seen.setdefault(key, cdr)
    return list(seen.values())


async def backfill(
    pool: Any,
    device_pattern: DeviceMatcher,
    since: datetime | None,
    *,
    region: str,
    source: CdrSource | None = None,
    max_call_s: float = DEFAULT_MAX_CALL_S,
    alerts: AlertSink | None = None,
    now: datetime | None = None,
    scope: str = "",
) -> Backfill:
    """Rebuild every call with a CDR or a routing decision but no record (on one pooled
    connection: see `backfill_on`). `region` ([pbx] default_region) reads the rebuilt
    calls' numbers written without a country code.

    `scope`: one of several PBXs' call id prefix (`east:`); only its kept Cdrs and routing
    decisions are looked at (its `source` must give CDRs in that namespace too)."""
    async with pool.acquire() as conn:
        return await backfill_on(
            conn,
            device_pattern,
            since,
            source=source,
            max_call_s=max_call_s,
            region=region,
            alerts=alerts,
            now=now,
            scope=scope,
        )


async def backfill_on(
    conn: Any,
    device_pattern: DeviceMatcher,
    since: datetime | None,
    *,
    region: str,
    source: CdrSource | None = None,
    max_call_s: float = DEFAULT_MAX_CALL_S,
    alerts: AlertSink | None = None,
    now: datetime | None = None,
    scope: str = "",
) -> Backfill:
    """`backfill` on `conn`, for a caller already holding one: the periodic reconciler
    runs it on the connection that holds its advisory lock, so a run takes one connection
    of the pool, not two (a small pool shared with other jobs would otherwise deadlock)."""
    now = now or datetime.now(UTC)
    problems: tuple[str, ...] = ()
    problem_count = 0
    external: list[PbxCdr] = []
    if source is not None:
        batch = await source.read(since)
        external, problems, problem_count = batch.cdrs, tuple(batch.problems), batch.problem_count
        for text in batch.problems[:20]:
            log.warning("CDR store: %s", text)
        if problem_count:
            metrics.SOURCE_PROBLEMS.inc(problem_count)
            if alerts is not None:
                alerts.alert(
                    "cdr_unreadable",
                    source.description,
                    f"{problem_count} CDR lines of {source.description} could not be read",
                    {"first": list(batch.problems[:10])},
                )
    failures: dict[str, str] = {}
    rows = await conn.fetch(_CDRS, since, scope)
    cdrs = _merge([PbxCdr.from_dict(dict(r)) for r in rows], external)
    uniqueids = sorted({c.uniqueid for c in cdrs})
    known = await conn.fetch(
        "SELECT uniqueid, call_id, " + PROVISIONAL + " AS provisional"
        " FROM call_record_channels c JOIN call_records r USING (call_id)"
        " WHERE uniqueid = ANY($1::text[]) AND r.ended_at IS NOT NULL",
        uniqueids,
    )
    recorded = {r["uniqueid"]: r["call_id"] for r in known if not r["provisional"]}
    decided = {
        r["uniqueid"]: r
        for r in await conn.fetch(
            "SELECT uniqueid, linkedid, queue, recording FROM route_decisions"
            " WHERE uniqueid = ANY($1::text[])",
            uniqueids,
        )
    }
    call_of = {u: (r["linkedid"] or u) for u, r in decided.items()}
    call_of.update({c.uniqueid: c.linkedid for c in cdrs if c.linkedid})
    call_of.update({r["uniqueid"]: r["call_id"] for r in known})
    groups = group_cdrs(cdrs, call_of)
    finished = {
        r["call_id"]
        for r in await conn.fetch(
            "SELECT call_id FROM call_records r WHERE call_id = ANY($1::text[])"
            " AND ended_at IS NOT NULL AND NOT " + PROVISIONAL,
            list(groups),
        )
    }
    handsets = handset_index(cdrs)
    checked = backfilled = 0
    rebuilt: set[str] = set()
    for call_id, group in groups.items():
        event_decision = next(
            (
                CallDecision(decided[c.uniqueid]["queue"], decided[c.uniqueid]["recording"])
                for c in group
                if c.uniqueid in decided
            ),
            None,
        )
        done = call_id in finished or any(c.uniqueid in recorded for c in group)
        event = call_from_cdrs(call_id, group, device_pattern, event_decision, handsets)
        if event is None:
            if event_decision is not None and not done:
                failures[call_id] = "its CDRs hold no caller leg with start and end times"
            continue  # else an agent handset's own Cdr, counted with its call
        checked += 1
        if done:
            continue
        try:
            async with conn.transaction():
                written = await write_ended(
                    conn, event, only_missing=True, source="reconciled", region=region
                )
        except ValidationError as exc:
            failures[call_id] = f"rejected: {exc}"
            continue
        rebuilt.add(call_id)
        if written:
            backfilled += 1
            metrics.RECONCILED.inc()
            log.info("call %r rebuilt from %d CDRs", call_id[:150], len(group))
    cutoff = now - timedelta(seconds=max_call_s)
    for row in await conn.fetch(_UNRECORDED_DECISIONS, since, cutoff, scope):
        call_id = row["call_id"]
        if call_id not in rebuilt and call_id not in failures:
            failures[call_id] = "a routing decision but no CDR (is [pbx] cdr_source set?)"
    if rebuilt:
        await conn.execute(
            "UPDATE call_reconcile_failures SET resolved_at = now()"
            " WHERE call_id = ANY($1::text[]) AND resolved_at IS NULL",
            sorted(rebuilt),
        )
    for call_id, reason in sorted(failures.items()):
        row = await conn.fetchrow(_FAILED, call_id[:150], reason)
        if row["first_time"]:
            metrics.UNREBUILDABLE.inc()
            log.error("call %r lost: %s", call_id[:150], reason)
        if alerts is not None:  # the alerter de-duplicates per call
            alerts.alert(
                "data_loss",
                call_id[:150],
                f"call {call_id[:150]} has no call record and cannot be rebuilt",
                {"call_id": call_id[:150], "reason": reason},
            )
    metrics.UNREBUILDABLE_OPEN.set(
        await conn.fetchval(
            "SELECT count(*) FROM call_reconcile_failures WHERE resolved_at IS NULL"
        )
    )
    return Backfill(
        checked,
        backfilled,
        tuple(sorted(failures.items())),
        problems,
        problem_count,
    )


_RESEND = """
WITH missing AS (
    INSERT INTO call_outbox (call_id, ended_at)
    SELECT r.call_id, r.ended_at FROM call_records r
    WHERE r.ended_at IS NOT NULL AND ($1::timestamptz IS NULL OR r.ended_at >= $1)
      AND NOT EXISTS (SELECT 1 FROM call_outbox o WHERE o.call_id = r.call_id)
    RETURNING call_id
), again AS (
    UPDATE call_outbox SET state = 'pending', attempts = 0, next_attempt_at = now(),
        enqueued_at = now(), last_error = NULL
    WHERE state <> 'delivered' AND ($1::timestamptz IS NULL OR ended_at >= $1)
    RETURNING call_id
)
SELECT (SELECT count(*) FROM missing) + (SELECT count(*) FROM again)
"""


async def resend(pool: Any, since: datetime | None) -> int:
    """Queue again every record the CRM has not acknowledged; returns how many."""
    return int(await pool.fetchval(_RESEND, since))


async def run_sync(
    pool: Any,
    connector: CrmConnector,
    device_pattern: DeviceMatcher,
    *,
    region: str,
    since: datetime | None = None,
    max_attempts: int = 5,
    source: CdrSource | None = None,
    max_call_s: float = DEFAULT_MAX_CALL_S,
    alerts: AlertSink | None = None,
    scope: str = "",
) -> SyncSummary:
    """Backfill (one PBX's calls with `scope`, see `backfill`), then re-send."""
    found = await backfill(
        pool,
        device_pattern,
        since,
        source=source,
        region=region,
        max_call_s=max_call_s,
        alerts=alerts,
        scope=scope,
    )
    resent = await resend(pool, since)
    outcomes: dict[str, int] = {"delivered": 0, "dead": 0, "retry": 0}
    worker = OutboxWorker(pool, connector, max_attempts=max_attempts, backoff_s=60.0)
    worker.on_outcome(
        lambda _cid, outcome, _lag: outcomes.__setitem__(outcome, outcomes[outcome] + 1)
    )
    await worker.drain()
    return SyncSummary(
        found.checked,
        found.backfilled,
        resent,
        outcomes["delivered"],
        outcomes["dead"],
        found.unrebuildable,
        found.source_problems,
        found.source_problem_count,
    )
