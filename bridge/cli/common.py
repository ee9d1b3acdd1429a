"""Helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from bridge.config import Config, config_path, load_config
from bridge.db.embedded import DEFAULT_ROOT, database_url
from bridge.db.pool import create_pool
from bridge.errors import ConfigError


def config_from(
    args: argparse.Namespace, *, runtime: bool = False, database: bool = False
) -> Config:
    """The configuration; with `database`, also refuse to start an embedded PostgreSQL in a
    folder nobody configured: a command typed in the wrong folder (no configuration file, no
    database URL, no `./.crm-bridge/` of a demo) must not leave a new database there."""
    explicit = getattr(args, "config", None)
    config = load_config(explicit, runtime=runtime)
    nowhere = config_path(explicit) is None and not DEFAULT_ROOT.exists()
    if database and not config.database.url and nowhere:
        raise ConfigError(
            "database.url",
            f"not set: no configuration file (--config FILE, $CRM_BRIDGE_CONFIG,"
            f" ./crm-bridge.toml), no $CRM_BRIDGE_DATABASE_URL and no demo database in"
            f" {Path.cwd() / DEFAULT_ROOT}. Point it at your database with"
            " CRM_BRIDGE_DATABASE_URL=postgresql://USER@HOST/DB (or [database] url in"
            " the file), or run this where `crm-bridge demo` ran",
        )
    return config


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
