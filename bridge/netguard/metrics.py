"""Prometheus metrics of the connection guards (default registry, registered on import)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

REFUSED = Counter(
    "crm_bridge_connections_refused",
    "Connections closed by a port's guard, by listener and reason (not_allowed, over_capacity:"
    " closed before reading; evicted, first_byte_timeout, header_timeout: cut before their"
    " header ended)",
    ["listener", "reason"],
)
OPEN = Gauge(
    "crm_bridge_connections_open",
    "Connections open on a guarded port, by listener and state (pending: header not ended)",
    ["listener", "state"],
)
