"""The database URL to use: the configured one, or an embedded PostgreSQL for the demo."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bridge.config import Config
from bridge.errors import ConfigError


@asynccontextmanager
async def database_url(config: Config) -> AsyncIterator[str]:
    if config.database.url:
        yield config.database.url
        return
    raise ConfigError("database.url", "not set (set CRM_BRIDGE_DATABASE_URL or [database] url)")
