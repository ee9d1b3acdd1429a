"""Batch reconciliation (`crm-bridge sync run`): Cdrs vs call records, CRM re-delivery."""

from __future__ import annotations

from bridge.sync.reconcile import SyncSummary, run_sync

__all__ = ["SyncSummary", "run_sync"]
