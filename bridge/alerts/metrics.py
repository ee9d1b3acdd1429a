"""Prometheus metrics of the monitor (default registry, served by `/metrics`).

`docker/prometheus/alerts.yml` expresses the same conditions from these and the feature
metrics, so an admin can alert from Prometheus, from the bridge, or both.
"""

from __future__ import annotations

from prometheus_client import Gauge

CONDITION = Gauge(
    "crm_bridge_alert_condition", "1 while the bridge's alert condition is firing", ["condition"]
)
COMMIT_LAG = Gauge(
    "crm_bridge_record_commit_lag_oldest_seconds",
    "Age of the oldest call end not yet committed to call_records",
)
CHANGE_LAG = Gauge(
    "crm_bridge_crm_change_lag_seconds",
    "Last CRM change applied: its own updated_at to the bridge having it",
)
SPOOL_FREE = Gauge(
    "crm_bridge_spool_free_ratio", "Free share (0..1) of the spool directory's filesystem"
)
DEGRADED_SHARE = Gauge(
    "crm_bridge_route_degraded_ratio", "Share (0..1) of routing decisions degraded in the window"
)
