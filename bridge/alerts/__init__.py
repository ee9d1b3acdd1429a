"""Operator alerts (sync lag, dead letters) by webhook and email, de-duplicated."""

from __future__ import annotations

from bridge.alerts.alerter import Alerter

__all__ = ["Alerter"]
