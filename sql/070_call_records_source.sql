-- Where a call record came from, and which way the call went (CONTRACT "Call records").
--
-- source     'live': written from the AMI link's end event; 'reconciled': rebuilt afterwards
--            from the PBX's own CDRs (pbx_cdrs, cdr_csv's Master.csv or a cdr_pgsql table)
--            by `crm-bridge sync run` or the periodic reconcile inside `crm-bridge run`,
--            because the bridge was down or its link lost the end.
-- direction  'inbound' (a caller reached a queue) or 'outbound' (click-to-call).
--
-- Existing rows: those with inferred fields from Cdrs were backfilled by sync, the rest live.

ALTER TABLE call_records
    ADD COLUMN IF NOT EXISTS direction text NOT NULL DEFAULT 'inbound'
        CHECK (direction IN ('inbound', 'outbound')),
    ADD COLUMN IF NOT EXISTS source text NOT NULL DEFAULT 'live'
        CHECK (source IN ('live', 'reconciled'));

UPDATE call_records SET source = 'reconciled'
WHERE 'ended_at' = ANY (inferred) AND 'started_at' = ANY (inferred);

CREATE INDEX IF NOT EXISTS call_records_reconciled_idx ON call_records (ended_at DESC)
    WHERE source = 'reconciled';

-- Calls the reconciliation found (a routing decision or a CDR) but could not rebuild: listed
-- for the operator (`crm-bridge sync run`), counted in /metrics, alerted once as data loss.
CREATE TABLE IF NOT EXISTS call_reconcile_failures (
    call_id      text PRIMARY KEY CHECK (length(call_id) BETWEEN 1 AND 150),
    reason       text NOT NULL,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz
);
