"""Prometheus metrics for call records and their delivery (default registry, on import)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)

RECORDS_WRITTEN = Counter("crm_bridge_records_written", "Call records committed to PostgreSQL")
RECORD_WRITE_LAG = Histogram(
    "crm_bridge_record_write_lag_seconds",
    "Call end (hangup) to the committed call_records row",
    buckets=_LAG_BUCKETS,
)
RECORD_WRITE_ERRORS = Counter(
    "crm_bridge_record_write_errors", "Failed attempts to write spooled records", ["reason"]
)
SPOOL_PENDING = Gauge("crm_bridge_records_spool_pending", "Spooled entries not yet in PostgreSQL")
CDRS_STORED = Counter("crm_bridge_cdrs_stored", "Asterisk Cdr events kept in pbx_cdrs")

SYNC_LAG = Histogram(
    "crm_bridge_sync_lag_seconds",
    "Call end to the record delivered to the CRM connector",
    buckets=_LAG_BUCKETS,
)
SYNC_LAG_OLDEST = Gauge(
    "crm_bridge_sync_lag_oldest_seconds", "Age of the oldest call record not yet delivered"
)
DELIVERY_FAILURES = Counter(
    "crm_bridge_sync_delivery_failures", "Failed deliveries to the CRM connector", ["error"]
)
DEAD_LETTERS = Counter("crm_bridge_sync_dead_letters", "Records moved to the dead-letter table")
BACKLOG = Gauge("crm_bridge_sync_backlog", "Call records waiting for delivery")
DELIVERED = Counter("crm_bridge_sync_delivered", "Call records delivered to the CRM connector")
