"""`crm-bridge db migrate`."""

from __future__ import annotations

import argparse
import asyncio

from bridge.cli.common import config_from
from bridge.db.embedded import database_url
from bridge.db.migrate import migrate


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION")
    db_sub.required = True
    mig = db_sub.add_parser("migrate", help="apply sql/*.sql migrations not yet applied")
    mig.set_defaults(handler=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    config = config_from(args, database=True)

    async def go() -> list[str]:
        async with database_url(config) as url:
            return await migrate(url)

    applied = asyncio.run(go())
    if applied:
        for name in applied:
            print(f"applied {name}")
    else:
        print("database is up to date")
    return 0
