"""Prometheus metrics of the AMI link (default registry, served by `/metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("crm_bridge_ami_events_total", "AMI events received")
RECONNECTS = Counter("crm_bridge_ami_reconnects_total", "AMI connection attempts after the first")
PROTOCOL_ERRORS = Counter(
    "crm_bridge_ami_protocol_errors_total", "AMI frames dropped as malformed or oversized"
)
BACKPRESSURE_PAUSES = Counter(
    "crm_bridge_ami_backpressure_pauses_total",
    "Times the AMI read was held because a lossless subscriber (call records) was full",
)
LINK_STATE = Gauge("crm_bridge_ami_link_state", "1 for the AMI link's current state", ["state"])
PONG_LATENCY = Histogram(
    "crm_bridge_ami_pong_latency_seconds",
    "Time from Ping to Pong on the AMI link",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
