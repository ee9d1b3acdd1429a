"""Helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from bridge.config import Config, load_config
from bridge.db.embedded import database_url
from bridge.db.pool import create_pool
from bridge.errors import ConfigError


def config_from(args: argparse.Namespace, *, runtime: bool = False) -> Config:
    return load_config(getattr(args, "config", None), runtime=runtime)


@asynccontextmanager
async def database_pool(config: Config) -> AsyncIterator[asyncpg.Pool[Any]]:
    """A pool on the configured database (the embedded one when no URL is set)."""
    async with database_url(config) as url:
        pool = await create_pool(url, max_size=max(2, config.database.pool_size))
        try:
            if await pool.fetchval("SELECT to_regclass('routing_rules')") is None:
                raise ConfigError(
                    "database.url", "the database has no schema yet: run `crm-bridge db migrate`"
                )
            yield pool
        finally:
            await pool.close()
