"""Fixtures of the CLI tests: the loopback alert receivers."""

from __future__ import annotations

from tests.alerts.conftest import gateway, hook, smtp

__all__ = ["gateway", "hook", "smtp"]
