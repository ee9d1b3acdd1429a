"""Prometheus metrics of reconciliation (default registry, served by `/metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RECONCILED = Counter(
    "crm_bridge_reconcile_rebuilt_total",
    "Call records rebuilt from the PBX's CDRs (source = reconciled)",
)
UNREBUILDABLE = Counter(
    "crm_bridge_reconcile_unrebuildable_total",
    "Calls with a routing decision or CDR whose record could not be rebuilt (data loss)",
)
UNREBUILDABLE_OPEN = Gauge(
    "crm_bridge_reconcile_lost_calls",
    "Calls currently listed as lost in call_reconcile_failures",
)
SOURCE_PROBLEMS = Counter(
    "crm_bridge_reconcile_cdr_unreadable_total",
    "Lines of the PBX's CDR store ([pbx] cdr_source) that could not be read",
)
RUNS = Counter("crm_bridge_reconcile_runs_total", "Reconciliation runs", ["result"])
