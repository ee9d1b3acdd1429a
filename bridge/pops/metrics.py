"""Prometheus metrics of the pop hub (default registry, registered once on import)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONNECTED = Gauge("crm_bridge_pops_connected", "Pop websocket clients past welcome")
SENT = Counter("crm_bridge_pops_sent", "Messages written to pop clients, by type", ["type"])
DROPPED = Counter(
    "crm_bridge_pops_dropped_clients",
    "Pop clients closed by the hub, by reason (slow, malformed, auth, binary, too_big)",
    ["reason"],
)
LATENCY = Histogram(
    "crm_bridge_pops_latency_seconds",
    "From a ringing event reaching the hub to the pop written to the agent's socket",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
