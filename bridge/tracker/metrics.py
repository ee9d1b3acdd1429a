"""Prometheus metrics of the call tracker (default registry, served by `/metrics`).

The names keep their `ami` prefix from when the AMI link fed the tracker itself."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CALL_EVENTS = Counter(
    "crm_bridge_ami_call_events_total", "Call events emitted by the tracker", ["kind"]
)
ACTIVE_CALLS = Gauge("crm_bridge_ami_active_calls", "Calls the tracker is following")
