"""Prometheus metrics for ARI mode (registered once, on import, in the default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("crm_bridge_ari_events", "ARI events received, by type", ["type"])
BAD_EVENTS = Counter(
    "crm_bridge_ari_bad_events", "ARI websocket messages that could not be decoded (skipped)"
)
CALLS = Counter(
    "crm_bridge_ari_calls",
    "Calls handled in Stasis, by outcome (continued, hung_up, failed)",
    ["outcome"],
)
DEGRADED = Counter(
    "crm_bridge_ari_degraded", "Calls continued with the default route (CRM late or failing)"
)
RESYNCED = Counter(
    "crm_bridge_ari_resynced_channels",
    "Channels found parked in our app by GET /channels after a (re)connect",
)
REST_ERRORS = Counter("crm_bridge_ari_rest_errors", "Failed ARI REST calls, by error", ["error"])
RECONNECTS = Counter("crm_bridge_ari_reconnects", "ARI websocket connections opened")
REPLACED = Counter(
    "crm_bridge_ari_app_replaced", "ApplicationReplaced: another connection took the ARI app"
)
CONNECTED = Gauge("crm_bridge_ari_connected", "1 while the ARI event websocket is open")
IN_FLIGHT = Gauge("crm_bridge_ari_in_flight", "Calls in Stasis being decided or continued")
HANDLE_SECONDS = Histogram(
    "crm_bridge_ari_handle_seconds",
    "From StasisStart (or resync) to the continue request being answered",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0),
)
