"""Prometheus metrics of the call tracker (default registry, served by `/metrics`).

The names keep their `ami` prefix from when the AMI link fed the tracker itself."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CALL_EVENTS = Counter(
    "crm_bridge_ami_call_events_total", "Call events emitted by the tracker", ["kind"]
)
# One series per PBX: `pbx` is its `[[pbx]]` name, "" for a legacy single PBX (which
# Prometheus stores as no label at all, so that series is what it always was). With several
# PBXs, `sum(crm_bridge_ami_active_calls)` is every call the bridge follows.
ACTIVE_CALLS = Gauge(
    "crm_bridge_ami_active_calls", "Calls the PBX's call tracker is following", ["pbx"]
)
