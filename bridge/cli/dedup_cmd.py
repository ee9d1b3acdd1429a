"""`crm-bridge customers dedup | merge | merges`: find duplicates, merge them explicitly,
report past merges (rules in bridge/crm/dedup.py and bridge/crm/merge.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from bridge.cli.common import config_from, database_pool
from bridge.crm.dedup import describe, find_groups, load_customers
from bridge.crm.merge import UNSET, MergePolicy, MergeResult, merge, merges

MERGE_POLICY = """\
policy:
  The first id survives (keeps its id and name); phones, orders, contracts, marketing
  events, service history, call records and route decisions of the others move to it;
  the others are deleted. Tags: the union (--tags survivor: the survivor's only).
  Attributes and owner: values only one customer has are kept; different values are a
  conflict, refused (nothing changes, exit 2) unless --on-conflict survivor (the survivor's
  value, else the first other's in the order given) or --owner AGENT|none settles it.
  Everything happens in one transaction, is audited (customer.merge, customer.merged_into)
  and listed by `crm-bridge customers merges`.
"""


def register_dedup(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dedup = actions.add_parser(
        "dedup",
        help="list likely duplicate customers (merging is explicit: customers merge)",
        description=(
            "Groups of likely duplicates with the reason: the same phone in another format"
            " (attributes such as mobile, ids such as tel-15551230001), the same e-mail, the"
            " same name with a shared owner or attribute. Nothing is changed."
        ),
    )
    dedup.add_argument("--json", action="store_true", help="print the groups as JSON")
    dedup.set_defaults(handler=_dedup)
    mrg = actions.add_parser(
        "merge",
        help="merge customers into the first one given",
        epilog=MERGE_POLICY,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mrg.add_argument("survivor", metavar="KEEP_ID")
    mrg.add_argument("others", metavar="OTHER_ID", nargs="+")
    mrg.add_argument("--on-conflict", choices=("refuse", "survivor"), default="refuse")
    mrg.add_argument("--tags", choices=("union", "survivor"), default="union")
    mrg.add_argument("--owner", metavar="AGENT|none", help="the merged customer's owner")
    mrg.add_argument("--reason", default="", help="kept with the merge (e.g. the dedup group)")
    mrg.add_argument("--dry-run", action="store_true", help="show the result; change nothing")
    mrg.set_defaults(handler=_merge)
    past = actions.add_parser("merges", help="list past merges, newest first")
    past.add_argument("--customer", metavar="ID", help="merges this id survived or vanished in")
    past.add_argument("--limit", type=int, default=100)
    past.set_defaults(handler=_merges)


def _dedup(args: argparse.Namespace) -> int:
    config = config_from(args, database=True)

    async def go() -> list[Any]:
        async with database_pool(config) as pool:
            return find_groups(await load_customers(pool), config.pbx.default_region)

    groups = asyncio.run(go())
    if args.json:
        print(json.dumps([{"ids": g.ids, "reasons": g.reasons} for g in groups], indent=2))
    else:
        for line in describe(groups):
            print(line)
        print(f"{len(groups)} groups of likely duplicates")
    return 0


def _merge(args: argparse.Namespace) -> int:
    config = config_from(args, database=True)
    owner: Any = UNSET
    if args.owner is not None:
        owner = None if args.owner == "none" else args.owner
    policy = MergePolicy(on_conflict=args.on_conflict, tags=args.tags, owner=owner)

    async def go() -> MergeResult:
        async with database_pool(config) as pool:
            return await merge(
                pool, args.survivor, args.others, policy, reason=args.reason, dry_run=args.dry_run
            )

    result = asyncio.run(go())
    head = "dry run, nothing changed: would merge" if args.dry_run else f"merge {result.merge_id}:"
    print(f"{head} {' '.join(result.merged_ids)} into {args.survivor}")
    moved = ", ".join(f"{table} {n}" for table, n in sorted(result.moved.items()) if n)
    print(f"moved: {moved or 'nothing'}")
    print("customer: " + json.dumps(result.survivor, ensure_ascii=False, sort_keys=True))
    return 0


def _merges(args: argparse.Namespace) -> int:
    config = config_from(args, database=True)

    async def go() -> list[Any]:
        async with database_pool(config) as pool:
            return await merges(pool, customer=args.customer, limit=args.limit)

    for record in asyncio.run(go()):
        told = "CRM told" if record.crm_notified_at else "CRM not told yet"
        print(
            f"merge {record.id} {record.at} by {record.actor}: {' '.join(record.merged_ids)}"
            f" into {record.survivor_id} ({told}){' - ' + record.reason if record.reason else ''}"
        )
    return 0
