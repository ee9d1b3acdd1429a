"""`crm-bridge customers import | dedup | merge` (rules in bridge/crm/importer.py and
bridge/crm/dedup.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from bridge.cli.common import config_from, database_pool
from bridge.cli.dedup_cmd import register_dedup
from bridge.crm.importer import (
    EMPTY_POLICIES,
    ImportOptions,
    ImportReport,
    import_file,
    parse_types,
)

IMPORT_FORMAT = """\
file format:
  UTF-8 CSV (a BOM is allowed), comma-separated, RFC 4180 quoting: a cell holding a comma,
  a quote or a line break is put in double quotes, and a quote inside it is doubled ("").
  The header row names the columns (case-insensitive):
    name     required
    phones   required column; several separated by ';', normalised to E.164
    tags     several separated by ';' (letters, digits, _ . : -)
    owner    an existing agent id
    id       the CRM's own customer id; without it the id is tel-<first phone digits>
    others   each becomes an attribute of that name
  A row with more cells than the header has columns is rejected (nothing is dropped).

update semantics:
  A non-empty phones, tags or owner cell replaces the stored ones; a non-empty attribute
  cell overwrites that attribute, other attributes stay. An empty cell follows --empty:
  keep (default) leaves the stored value, clear removes it. A phone owned by another
  customer rejects the row (phones never move: see `crm-bridge customers dedup`). A new
  customer needs a phone. Importing the same file twice changes nothing.

attribute types:
  --types COLUMN=TYPE[,...] with TYPE number, integer, boolean or text: a cell that is not
  of its column's type rejects the row. Undeclared columns: all numbers -> numbers, else
  text; a column mixing both stops the import (exit 2) until its type is declared.

output and exit status:
  One line per row read, with its line number: created, updated (what changed), unchanged,
  or rejected with the reason (rejections also on stderr), then the counts, which add up to
  the rows read. A rejected row changes nothing. Exit 0: every row imported; 1: some row
  was rejected; 2: unusable file or usage (nothing written).
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    customers = sub.add_parser("customers", help="the built-in CRM's customers")
    actions = customers.add_subparsers(dest="customers_command", metavar="ACTION")
    actions.required = True
    imp = actions.add_parser(
        "import",
        help="import customers from CSV (name, phones, tags, owner, [id], attributes...)",
        description="Import or update customers from a CSV file, row by row.",
        epilog=IMPORT_FORMAT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("file", metavar="FILE.csv")
    imp.add_argument(
        "--dry-run", action="store_true", help="report what would happen; write nothing"
    )
    imp.add_argument(
        "--types",
        default="",
        metavar="COL=TYPE,...",
        help="declare attribute column types (number, integer, boolean, text)",
    )
    imp.add_argument(
        "--empty",
        choices=EMPTY_POLICIES,
        default="keep",
        help="what an empty cell does to a stored value (default: keep)",
    )
    imp.set_defaults(handler=_import)
    register_dedup(actions)


def _import(args: argparse.Namespace) -> int:
    options = ImportOptions(types=parse_types(args.types), empty=args.empty, dry_run=args.dry_run)
    config = config_from(args, database=True)

    async def go() -> ImportReport:
        async with database_pool(config) as pool:
            return await import_file(pool, Path(args.file), config.pbx.default_region, options)

    report = asyncio.run(go())
    for result in report.rows:
        print(result.describe())
        if result.outcome == "rejected":
            print(result.describe(), file=sys.stderr)
    print(report.summary())
    return 0 if report.ok else 1
