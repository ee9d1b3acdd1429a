"""`crm-bridge doctor`: each part of an installation checked once, one line each.

A check returns `Check(name, status, detail)`; status `ok`, `warn` (works, but an admin
should look) or `fail` (the bridge cannot do its job). Checks never raise: an unexpected
error is that check's failure, and the others still run. Secrets never appear in a line.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import asyncpg

from bridge.alerts import Alerter
from bridge.config import Config
from bridge.connectors import build_connector
from bridge.crm.off_pbx import agents_off_pbx, off_pbx_text
from bridge.db.migrate import migration_files
from bridge.db.pool import connect
from bridge.doctor.ami import NEEDED_ACTIONS, NEEDED_READ, probe_ami

__all__ = ["Check", "format_check", "run_checks"]

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str


def format_check(check: Check) -> str:
    detail = " ".join(check.detail.split())  # one line, whatever an error said
    return f"{check.status.upper():<4} {check.name}: {detail}"


async def check_database(config: Config) -> list[Check]:
    if not config.database.url:
        return [Check("database", "warn", "no [database] url: the embedded demo database")]
    try:
        conn = await connect(config.database.url)
    except Exception as exc:
        return [Check("database", "fail", f"unreachable: {exc}")]
    try:
        applied = set()
        if await conn.fetchval("SELECT to_regclass('schema_migrations')") is not None:
            applied = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
    finally:
        await conn.close()
    missing = [name for name, _ in migration_files() if name not in applied]
    out = [Check("database", "ok", "reachable")]
    if missing:
        out.append(
            Check(
                "migrations",
                "fail",
                f"{len(missing)} not applied (first {missing[0]}): run `crm-bridge db migrate`",
            )
        )
    else:
        out.append(Check("migrations", "ok", f"all {len(applied)} applied"))
    return out


async def check_agents_pbx(config: Config) -> list[Check]:
    """With `[[pbx]]` entries: every active agent is on one of them (else it matches no
    device). Nothing with a single PBX, or without a database to ask (`database` says why)."""
    if not config.pbx_sites or not config.database.url:
        return []
    try:
        conn = await connect(config.database.url)
    except Exception:
        return []
    try:
        ids = await agents_off_pbx(conn, config)
    except asyncpg.PostgresError:  # not migrated yet: `migrations` says so
        return []
    finally:
        await conn.close()
    if ids:
        return [Check("agents pbx", "warn", off_pbx_text(ids))]
    return [Check("agents pbx", "ok", "every active agent is on a configured [[pbx]] entry")]


async def check_ami(config: Config) -> list[Check]:
    ami = config.ami
    if not ami.enabled:
        return [Check("ami", "warn", "disabled: no screen-pops and no call records")]
    where = f"{ami.host}:{ami.port}"
    try:
        found = await probe_ami(ami)
    except (OSError, TimeoutError) as exc:
        return [Check("ami", "fail", f"cannot reach {where}: {exc or type(exc).__name__}")]
    if not found.logged_in:
        return [
            Check(
                "ami",
                "fail",
                f"login as {ami.username!r} refused at {where} ({found.error}):"
                " check [ami] username/secret and manager.conf",
            )
        ]
    out = [Check("ami", "ok", f"logged in as {ami.username!r} at {where}")]
    missing = found.missing_actions()
    if missing:
        need = ", ".join(f"{a} (write = {NEEDED_ACTIONS[a]})" for a in missing)
        out.append(
            Check(
                "ami write",
                "fail",
                f"may not run {need}: calls in progress at a restart would be missed",
            )
        )
    elif found.listed:
        out.append(Check("ami write", "ok", "may run CoreShowChannels (restart listing)"))
    if found.listed:
        out.append(_originate_check(found.actions))
    risky = found.risky_actions()
    if risky:
        out.append(
            Check(
                "ami write",
                "warn",
                f"may also run {', '.join(risky)}: the bridge never does; drop write ="
                " command/config/system in manager.conf",
            )
        )
    if found.reads_system:
        out.append(
            Check(
                "ami read",
                "warn",
                "reads class 'system' (FullyBooted arrived): the bridge needs"
                f" read = {NEEDED_READ}",
            )
        )
    else:
        out.append(
            Check(
                "ami read",
                "ok",
                f"no 'system' class; make sure read = {NEEDED_READ} (Asterisk does not list"
                " read classes)",
            )
        )
    return out


def _originate_check(actions: dict[str, str]) -> Check:
    """Click-to-call needs `Originate` (write = originate); without it dials answer 503."""
    if "Originate" in actions:
        return Check(
            "ami originate",
            "ok",
            "may run Originate (write = originate): click-to-call works; the bridge never"
            " sends Application/Data, keep write = system off",
        )
    return Check(
        "ami originate",
        "warn",
        "may not run Originate: click-to-call and call backs answer 503; add write ="
        " originate in manager.conf to use them (see its comment on the risk)",
    )


async def check_ari(config: Config) -> list[Check]:
    ari = config.ari
    if not ari.enabled:
        return [Check("ari", "ok", "disabled (FastAGI mode)")]
    url = ari.url.rstrip("/") + "/asterisk/info"
    auth = aiohttp.BasicAuth(ari.username, ari.password)
    try:
        async with aiohttp.ClientSession() as session:
            async with asyncio.timeout(10):
                async with session.get(url, auth=auth) as resp:
                    status = resp.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return [Check("ari", "fail", f"cannot reach {ari.url}: {type(exc).__name__}")]
    if status == 401:
        return [Check("ari", "fail", "refused: check [ari] username/password and ari.conf")]
    if status != 200:
        return [Check("ari", "fail", f"{ari.url} answered HTTP {status}")]
    return [Check("ari", "ok", f"{ari.url} answers as {ari.username!r}")]


async def check_agi(config: Config) -> list[Check]:
    wildcard = {"0.0.0.0", ""}  # noqa: S104 - we connect, not bind: use loopback instead
    host = "127.0.0.1" if config.agi.host in wildcard else config.agi.host
    host = "::1" if host == "::" else host
    where = f"{host}:{config.agi.port}"
    try:
        async with asyncio.timeout(5):
            _, writer = await asyncio.open_connection(host, config.agi.port)
        writer.close()
    except (OSError, TimeoutError) as exc:
        return [
            Check(
                "agi",
                "fail",
                f"nothing listens on {where} ({exc or type(exc).__name__}): is `crm-bridge run`"
                " running?",
            )
        ]
    return [Check("agi", "ok", f"FastAGI listens on {where}")]


async def check_crm(config: Config) -> list[Check]:
    name = config.crm.connector
    if name == "builtin":
        return [Check("crm", "ok", "builtin: the bridge's own tables (see database)")]
    connector: Any = build_connector(config)
    try:
        await connector.start()
        try:
            async with asyncio.timeout(max(5.0, config.crm.timeout_ms / 1000 * 2)):
                await connector.lookup("+15550100000")
        finally:
            await connector.stop()
    except Exception as exc:
        return [Check("crm", "fail", f"{name}: one lookup failed: {exc or type(exc).__name__}")]
    return [Check("crm", "ok", f"{name}: one lookup answered")]


async def check_alerts(config: Config) -> list[Check]:
    channels = Alerter(config.alerts).channels
    if not channels:
        return [Check("alerts", "warn", "no channel: set [alerts] webhook_url, smtp_* or sms_*")]
    return [
        Check(
            "alerts",
            "ok",
            f"{', '.join(channels)} configured; `crm-bridge alerts test` sends a test alert",
        )
    ]


CHECKS: list[Callable[[Config], Awaitable[list[Check]]]] = [
    check_database,
    check_agents_pbx,
    check_ami,
    check_ari,
    check_agi,
    check_crm,
    check_alerts,
]


# Checked once per PBX with several (`[[pbx]]`), each line named after it (`ami east`).
PER_PBX = (check_ami, check_ari)


async def run_checks(config: Config) -> list[Check]:
    out: list[Check] = [Check("config", "ok", "loaded")]
    for check in CHECKS:
        targets: list[tuple[str, Config]] = [("", config)]
        if check in PER_PBX and config.pbx_sites:
            targets = [(f" {site.name}", config.for_pbx(site)) for site in config.pbxs]
        for suffix, target in targets:
            try:
                found = await check(target)
            except Exception as exc:  # a bug in one check must not hide the others
                name = check.__name__.removeprefix("check_")
                found = [Check(name, "fail", f"{type(exc).__name__}: {exc}")]
            out.extend(dataclasses.replace(c, name=c.name + suffix) for c in found)
    return out
