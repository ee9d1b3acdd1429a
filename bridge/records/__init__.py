"""Durable call records: one row per call in `call_records`, delivered to the CRM.

Public API (what other parts call):
- `RecordWriter(pool, Spool(dir))` - a Component (`name = "records"`).
  `await on_event(event)`: subscriber for the tracker's call events *and* the decoded PBX
  events (`bridge.pbx_events`); keeps `CallEnded` (-> record) and `CdrRecord` (-> `pbx_cdrs`).
  `await submit(CallEnded)`, `await store_cdr(PbxCdr)`: same, explicitly. Each returns once
  the item is fsync'd in the local spool; the database write follows (and survives outages).
- `PbxCdr.from_fields(headers)` / `PbxCdr.from_event(CdrRecord)`: a Cdr from raw AMI
  headers (UniqueID, Channel, DestinationChannel, Source, Destination, Start/Answer/EndTime,
  Duration, BillableSeconds, Disposition, LastApplication, LastData) or the link's event.
- `OutboxWorker(pool, connector, max_attempts=, alerts=, lag_threshold_s=)` - a Component
  (`name = "outbox"`) delivering records to a `bridge.connectors.CrmConnector`.
- `build_records(config, pool, directory=, spool_dir=)` - all of it wired (see `wiring`).

Spool folder: `$CRM_BRIDGE_RECORDS_SPOOL_DIR`, else `./.crm-bridge/spool` (see `spool`).
Disposition and notes are owned by the agent page and never overwritten here; a trigger
(sql/030) re-queues a record for the CRM whenever they change.
"""

from __future__ import annotations

from bridge.records.cdr import PbxCdr
from bridge.records.outbox import OutboxWorker
from bridge.records.spool import Spool, default_spool_dir
from bridge.records.wiring import RecordsParts, build_records
from bridge.records.writer import RecordWriter

__all__ = [
    "OutboxWorker",
    "PbxCdr",
    "RecordWriter",
    "RecordsParts",
    "Spool",
    "build_records",
    "default_spool_dir",
]
