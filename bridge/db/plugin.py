"""The database plugin: the pool's health in /healthz (component `database`)."""

from __future__ import annotations

from bridge.db.health import DatabaseHealth
from bridge.plugin import Plugin

__all__ = ["DATABASE"]

DATABASE = Plugin("database", build=lambda ctx: DatabaseHealth(ctx.pool))
