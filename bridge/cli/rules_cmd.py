"""`crm-bridge rules list | add | remove | test`."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bridge.cli.common import config_from, database_pool
from bridge.config import Config
from bridge.crm.directory import PostgresDirectory
from bridge.crm.phones import to_e164
from bridge.errors import UsageError
from bridge.models import Customer, Decision, InboundCall
from bridge.routing.decide import decide
from bridge.routing.replay import MAX_REPLAY, Replayed, replay
from bridge.routing.rules import make_rule
from bridge.routing.store import RuleStore


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rules = sub.add_parser("rules", help="routing rules")
    actions = rules.add_subparsers(dest="rules_command", metavar="ACTION")
    actions.required = True

    actions.add_parser("list", help="show the rules in the order they are tried").set_defaults(
        handler=_list
    )

    add = actions.add_parser("add", help="add a rule (conditions combine with AND)")
    add.add_argument("name")
    add.add_argument("--queue", required=True)
    add.add_argument("--priority", type=int, default=0)
    add.add_argument("--position", type=int, help="insert at N (1 = first); default: last")
    add.add_argument("--tags-any", metavar="a,b", help="customer has any of these tags")
    add.add_argument("--tags-all", metavar="a,b", help="customer has all of these tags")
    add.add_argument("--unknown-caller", action="store_true", help="caller is not a customer")
    add.add_argument("--prefix", metavar="+86", help="caller's E.164 number starts with this")
    add.add_argument("--did", help="the dialled number")
    add.add_argument(
        "--when",
        metavar="'mon-fri 09:00-18:00, sat 10:00-12:00'",
        help="days and/or time windows, in [routing] timezone; several: comma after a time",
    )
    add.add_argument("--attr", metavar="'lifetime_value>=10000'", help="customer attribute test")
    add.add_argument(
        "--catch-all",
        action="store_true",
        help="allow a rule that matches every call (it shadows every rule below it)",
    )
    add.set_defaults(handler=_add)

    remove = actions.add_parser("remove", help="delete a rule")
    remove.add_argument("name")
    remove.set_defaults(handler=_remove)

    test = actions.add_parser("test", help="show the decision for a caller, without a call")
    test.add_argument("--did", default="", help="the dialled number")
    test.add_argument("--at", metavar="ISO_TIME", help="time of the call (default: now)")
    test.add_argument(
        "--replay",
        type=int,
        metavar="N",
        help="instead: replay the last N calls against the current rules and list those"
        " that would now route differently",
    )
    test.add_argument("number", nargs="?", help="caller ID as the PBX would give it")
    test.set_defaults(handler=_test)


def _list(args: argparse.Namespace) -> int:
    config = config_from(args, database=True)

    async def go() -> int:
        async with database_pool(config) as pool:
            rules = await RuleStore(pool).list_rules()
        if not rules:
            print(f"no rules: every call goes to {config.routing.default_queue}")
        for rule in rules:
            state = "" if rule.enabled else " (disabled)"
            print(
                f"{rule.position:>3}  {rule.name}  queue={rule.queue} priority={rule.priority}"
                f"  {rule.describe()}{state}"
            )
        print(f"  -  default  queue={config.routing.default_queue}")
        return 0

    return asyncio.run(go())


def _add(args: argparse.Namespace) -> int:
    config = config_from(args, database=True)
    rule = make_rule(
        args.name,
        args.queue,
        priority=args.priority,
        tags_any=args.tags_any,
        tags_all=args.tags_all,
        unknown_caller=args.unknown_caller,
        caller_prefix=args.prefix,
        did=args.did,
        when=args.when,
        attr=args.attr,
    )
    if rule.catch_all and not args.catch_all:
        raise UsageError(
            f"rule {rule.name} has no condition that can fail (it would match every call and"
            " shadow every rule below it); give a condition, or --catch-all if that is meant"
        )

    async def go() -> int:
        async with database_pool(config) as pool:
            stored = await RuleStore(pool).add_rule(rule, position=args.position)
        print(f"added rule {stored.name} at position {stored.position}: {stored.describe()}")
        return 0

    return asyncio.run(go())


def _remove(args: argparse.Namespace) -> int:
    config = config_from(args, database=True)

    async def go() -> int:
        async with database_pool(config) as pool:
            await RuleStore(pool).remove_rule(args.name)
        print(f"removed rule {args.name}")
        return 0

    return asyncio.run(go())


def _parse_at(text: str | None, tz: ZoneInfo) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(f"--at: {text[:60]!r} is not an ISO time like 2026-11-23T10:00") from exc
    return at if at.tzinfo is not None else at.replace(tzinfo=tz)


def _describe_customer(customer: Customer | None) -> str:
    if customer is None:
        return "unknown"
    tags = ",".join(customer.tags) or "-"
    return f"{customer.id} {customer.name} (tags: {tags})"


def _test(args: argparse.Namespace) -> int:
    config = config_from(args, database=True)
    tz = ZoneInfo(config.routing.timezone)
    if args.replay is not None:
        if args.number or args.at or args.did:
            raise UsageError("--replay takes no NUMBER, --at or --did: it uses the recorded calls'")
        if not 1 <= args.replay <= MAX_REPLAY:
            raise UsageError(f"--replay: a number of calls from 1 to {MAX_REPLAY}")
        return _replay(config, args.replay, tz)
    if not args.number:
        raise UsageError("rules test needs a NUMBER (or --replay N)")
    at = _parse_at(args.at, tz)
    caller = to_e164(args.number, config.pbx.default_region)
    call = InboundCall(raw_caller=args.number, caller=caller, caller_name="", did=args.did, at=at)

    async def go() -> Decision:
        async with database_pool(config) as pool:
            customer = await PostgresDirectory(pool).lookup(caller) if caller else None
            rules = await RuleStore(pool).list_rules()
        return decide(
            call,
            customer,
            rules,
            default_queue=config.routing.default_queue,
            default_priority=config.routing.default_priority,
            tz=tz,
        )

    decision = asyncio.run(go())
    print(f"time: {at.astimezone(tz).isoformat()} ({tz.key}, [routing] timezone)")
    print(f"caller: {caller or 'not a valid number (unknown caller)'}")
    print(f"queue: {decision.queue}")
    print(f"priority: {decision.priority}")
    print(f"rule: {decision.rule}")
    print(f"customer: {_describe_customer(decision.customer)}")
    return 0


def _replay(config: Config, count: int, tz: ZoneInfo) -> int:
    async def go() -> list[Replayed]:
        async with database_pool(config) as pool:
            rules = await RuleStore(pool).list_rules()
            return await replay(
                pool,
                rules,
                count,
                region=config.pbx.default_region,
                tz=tz,
                default_queue=config.routing.default_queue,
                default_priority=config.routing.default_priority,
            )

    replayed = asyncio.run(go())
    changed = [r for r in replayed if r.differs]
    print(f"time zone: {tz.key} ([routing] timezone); each call at the time it rang")
    for item in changed:
        print(item.describe())
    print(f"{len(replayed)} calls replayed, {len(changed)} would now route differently")
    return 0
