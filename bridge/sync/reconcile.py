"""Nightly reconciliation: kept Cdrs vs call_records, then re-delivery to the CRM.

1. **Backfill.** Every Cdr kept in `pbx_cdrs` (since `since`) is mapped to its call: through
   `call_record_channels` (the call is recorded), else `route_decisions` (uniqueid ->
   linkedid), else its own UniqueID. Calls with a caller leg but no finished record - the
   bridge was down, restarted mid-call, or its AMI link dropped at hangup - or only a
   provisional one (its end not seen: closed after `[pbx] max_call_s`) are rebuilt from
   their Cdrs (`bridge.sync.cdrs`) and written with every field listed in `inferred`; the
   route decision adds customer, rule and the BRIDGE_RECORDING path.
2. **Re-send.** Records the CRM never acknowledged (outbox `pending` or `dead`, or no outbox
   row at all) are queued again with fresh attempts, and delivered once by the connector
   now; what fails again stays queued for the live worker (or is dead-lettered at
   `[crm] max_attempts`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.connectors.base import CrmConnector
from bridge.records.cdr import PbxCdr
from bridge.records.outbox import OutboxWorker
from bridge.records.store import PROVISIONAL, write_ended
from bridge.sync.cdrs import CallDecision, call_from_cdrs, group_cdrs, handset_index

__all__ = ["SyncSummary", "backfill", "resend", "run_sync"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SyncSummary:
    checked: int  # calls found in the kept Cdrs
    backfilled: int  # of which had no record and were rebuilt
    resent: int  # records queued again for the CRM
    delivered: int  # of those, delivered in this run
    dead_lettered: int  # moved to the dead-letter table in this run

    def line(self) -> str:
        return (
            f"checked {self.checked}, backfilled {self.backfilled}, resent {self.resent}"
            f" (delivered {self.delivered}), dead-lettered {self.dead_lettered}"
        )


_CDRS = """
SELECT uniqueid, channel, destination_channel, source, destination, start_time, answer_time,
       end_time, duration_s, billable_s, disposition, last_application, last_data
FROM pbx_cdrs
WHERE $1::timestamptz IS NULL OR COALESCE(end_time, received_at) >= $1
ORDER BY id
"""


async def backfill(
    pool: Any, device_pattern: re.Pattern[str], since: datetime | None
) -> tuple[int, int]:
    """(calls checked, calls backfilled) from the kept Cdrs."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(_CDRS, since)
        cdrs = [PbxCdr.from_dict(dict(r)) for r in rows]
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
        for call_id, group in groups.items():
            event_decision = next(
                (
                    CallDecision(decided[c.uniqueid]["queue"], decided[c.uniqueid]["recording"])
                    for c in group
                    if c.uniqueid in decided
                ),
                None,
            )
            event = call_from_cdrs(call_id, group, device_pattern, event_decision, handsets)
            if event is None:
                continue  # an agent handset's own Cdr, counted with its call
            checked += 1
            if call_id in finished or any(c.uniqueid in recorded for c in group):
                continue
            async with conn.transaction():
                if await write_ended(conn, event, only_missing=True):
                    backfilled += 1
                    log.info("call %r backfilled from %d Cdrs", call_id, len(group))
    return checked, backfilled


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
    device_pattern: re.Pattern[str],
    *,
    since: datetime | None = None,
    max_attempts: int = 5,
) -> SyncSummary:
    checked, backfilled = await backfill(pool, device_pattern, since)
    resent = await resend(pool, since)
    outcomes: dict[str, int] = {"delivered": 0, "dead": 0, "retry": 0}
    worker = OutboxWorker(pool, connector, max_attempts=max_attempts, backoff_s=60.0)
    worker.on_outcome(
        lambda _cid, outcome, _lag: outcomes.__setitem__(outcome, outcomes[outcome] + 1)
    )
    await worker.drain()
    return SyncSummary(checked, backfilled, resent, outcomes["delivered"], outcomes["dead"])
