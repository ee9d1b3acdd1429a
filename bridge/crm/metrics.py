"""Prometheus metrics of the built-in CRM store (registered once, on import, in the default
registry). The directory's cache counter keeps its historical name, `crm_bridge_route_cache`:
every caller lookup routing makes goes through the directory, and dashboards read that name."""

from __future__ import annotations

from prometheus_client import Counter

CACHE = Counter("crm_bridge_route_cache", "Caller lookup cache results", ["result"])
