"""`crm-bridge sync run [--since TIME]`: reconcile kept Cdrs and the PBX's own CDR store
(`[pbx] cdr_source`) with call records, backfill what is missing (marked inferred,
`source = 'reconciled'`), re-send what the external CRM never acknowledged, print a one-line
summary. Every call that cannot be rebuilt is printed on its own line (`lost CALL_ID:
reason`), as is every unreadable CDR line (`cdr: FILE:LINE: reason`); exit 0 when none, 1
otherwise (cron mails the output).

Meant for cron, e.g. every night at 03:00 (a lock makes overlapping runs wait their turn);
with CRM_BRIDGE_CONFIG=/etc/crm-bridge.toml set at the top of the crontab::

    0 3 * * * crm-bridge sync run --since 48h >> /var/log/crm-bridge-sync.log 2>&1

`TIME` is an ISO date or time (`2026-11-23`, `2026-11-23T03:00:00+01:00`; no zone = UTC) or
a look-back such as `90m`, `48h`, `7d`. Without `--since`: the last 48 hours.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.alerts import Alerter
from bridge.cli.common import config_from, database_pool
from bridge.config import Config, PbxSite
from bridge.connectors import CrmConnector, build_connector
from bridge.db.pool import holds_session_state
from bridge.errors import UsageError
from bridge.pbx.namespace import site_devices
from bridge.sync import SyncSummary, run_sync
from bridge.sync.namespaced import site_cdr_source
from bridge.sync.periodic import SYNC_LOCK, scope_lock

DEFAULT_LOOKBACK = timedelta(hours=48)
_LOCK = SYNC_LOCK  # one sync at a time per database (the periodic run in `crm-bridge run` too)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sync = sub.add_parser("sync", help="reconcile call records with Asterisk Cdrs and the CRM")
    sync_sub = sync.add_subparsers(dest="sync_command", metavar="ACTION")
    sync_sub.required = True
    run = sync_sub.add_parser("run", help="backfill missing records, re-send unacknowledged")
    run.add_argument("--since", metavar="TIME", help="ISO time or look-back (48h, 7d)")
    run.set_defaults(handler=_run)


def parse_since(text: str | None, now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    if not text:
        return now - DEFAULT_LOOKBACK
    m = re.fullmatch(r"\s*(\d{1,6})\s*([smhdw])\s*", text)
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise UsageError(f"--since: expected an ISO time or e.g. 48h, got {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _run(args: argparse.Namespace) -> int:
    config = config_from(args, database=True)
    since = parse_since(args.since)

    async def go() -> SyncSummary:
        async with database_pool(config) as pool:
            connector = build_connector(config)
            alerter = Alerter(config.alerts)
            await alerter.start()
            await connector.start()
            try:
                # Each PBX in turn (one with a legacy configuration), under the same lock as
                # its periodic reconciliation in `crm-bridge run`.
                summaries = [
                    await _sync_pbx(pool, config, site, since, connector, alerter)
                    for site in config.pbxs
                ]
            finally:
                await connector.stop()
                await alerter.stop()
        return _total(summaries)

    summary = asyncio.run(go())
    print(f"sync since {since.isoformat()}: {summary.line()}")
    for problem in summary.source_problems:
        print(f"cdr: {_printable(problem)}")
    if summary.source_problem_count > len(summary.source_problems):
        print(f"cdr: ... {summary.source_problem_count - len(summary.source_problems)} more")
    for call_id, reason in summary.unrebuildable:
        print(f"lost {_printable(call_id)}: {reason}")
    return 1 if summary.unrebuildable or summary.source_problem_count else 0


async def _sync_pbx(
    pool: Any,
    config: Config,
    site: PbxSite,
    since: datetime,
    connector: CrmConnector,
    alerter: Alerter,
) -> SyncSummary:
    lock = scope_lock(site.prefix) if site.namespaced else _LOCK
    async with pool.acquire() as lock_conn:
        holds_session_state(lock_conn)  # the session lock must not outlive this run
        await lock_conn.execute("SELECT pg_advisory_lock($1)", lock)
        try:
            return await run_sync(
                pool,
                connector,
                site_devices(site),
                since=since,
                max_attempts=config.crm.max_attempts,
                region=site.pbx.default_region,
                source=site_cdr_source(site),
                max_call_s=float(site.pbx.max_call_s),
                alerts=alerter,
                scope=site.prefix,
            )
        finally:
            await lock_conn.execute("SELECT pg_advisory_unlock($1)", lock)


def _total(summaries: list[SyncSummary]) -> SyncSummary:
    """Several PBXs' runs as one summary."""
    if len(summaries) == 1:
        return summaries[0]
    return SyncSummary(
        sum(s.checked for s in summaries),
        sum(s.backfilled for s in summaries),
        sum(s.resent for s in summaries),
        sum(s.delivered for s in summaries),
        sum(s.dead_lettered for s in summaries),
        tuple(item for s in summaries for item in s.unrebuildable),
        tuple(item for s in summaries for item in s.source_problems),
        sum(s.source_problem_count for s in summaries),
    )


def _printable(text: str) -> str:
    """One line of a hostile value: control characters shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)[:500]
