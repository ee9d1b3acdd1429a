"""Prometheus metrics for routing (registered once, on import, in the default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DECISIONS = Counter("crm_bridge_route_decisions", "Routing decisions, by matching rule", ["rule"])
DEGRADED = Counter(
    "crm_bridge_route_degraded",
    "Calls routed to the default queue because the CRM was slow or down",
)
LOOKUP_SECONDS = Histogram(
    "crm_bridge_route_lookup_seconds",
    "Caller lookup latency (cache hits included)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5),
)
RECORD_ERRORS = Counter(
    "crm_bridge_route_record_errors", "route_decisions rows that could not be written"
)
