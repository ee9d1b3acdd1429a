"""`crm-bridge customers import FILE.csv` (rules in bridge/crm/importer.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from bridge.cli.common import config_from, database_pool
from bridge.crm.importer import ImportReport, import_file


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    customers = sub.add_parser("customers", help="the built-in CRM's customers")
    actions = customers.add_subparsers(dest="customers_command", metavar="ACTION")
    actions.required = True
    imp = actions.add_parser(
        "import",
        help="import customers from CSV (name, phones, tags, owner, [id], attributes...)",
        description=(
            "Rows that cannot be imported (a phone owned by another customer, no name, ...) are"
            " reported on stderr with their line numbers and skipped; the rest are imported."
            " Exit status: 0 the file was imported (see the report), 2 unusable file or usage."
        ),
    )
    imp.add_argument("file", metavar="FILE.csv")
    imp.set_defaults(handler=_import)


def _import(args: argparse.Namespace) -> int:
    config = config_from(args)

    async def go() -> ImportReport:
        async with database_pool(config) as pool:
            return await import_file(pool, Path(args.file), config.pbx.default_region)

    report = asyncio.run(go())
    for line, message in report.problems:
        print(f"line {line}: {message}", file=sys.stderr)
    print(report.summary())
    # CONTRACT: 0 on success, 2 on bad usage or configuration. Reporting a row instead of
    # merging it is the import working as designed, so it is a success with a report.
    return 0
