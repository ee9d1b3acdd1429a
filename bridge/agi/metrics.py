"""Prometheus metrics of the FastAGI server (default registry, registered on import)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SESSIONS = Counter("crm_bridge_agi_sessions", "FastAGI sessions accepted, by script", ["script"])
ACTIVE = Gauge("crm_bridge_agi_sessions_active", "FastAGI sessions open now")
ERRORS = Counter(
    "crm_bridge_agi_errors",
    "FastAGI sessions that failed, by kind (header, timeout, write_timeout, protocol,"
    " closed, overload, evicted, unknown_script, command, handler, unattributed)",
    ["kind"],
)
ROUTE_SECONDS = Histogram(
    "crm_bridge_agi_route_seconds",
    "Time from a complete /route header to the decision being ready",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0),
)
