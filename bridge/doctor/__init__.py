"""`crm-bridge doctor`: one line per check of an installation (config, database, AMI, ARI,
FastAGI, CRM, alert channels)."""

from __future__ import annotations

from bridge.doctor.checks import Check, format_check, run_checks

__all__ = ["Check", "format_check", "run_checks"]
