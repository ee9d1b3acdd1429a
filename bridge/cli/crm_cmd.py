"""`crm-bridge crm setup NAME` and `crm-bridge crm check [NUMBER]`: a prebuilt CRM connector
set up and proven by a telecom admin alone.

`setup` takes the account's API address and non-secret values as flags, reads each
credential from `$CRM_BRIDGE_CRM_<NAME>`, else asks for it (hidden) on a terminal, else
reads one line per credential from stdin; it writes the secrets to a 0600 credentials file,
shows the preset field mapping, and writes the `[crm]` section of the configuration file
(other sections are left as they are).

`check` authenticates, looks the number up, prints the mapped card and what a call record
would send, and says what to fix when something fails (bad credentials, missing scope,
field not found, rate-limited). Exit 0 when all worked, 1 when the CRM refused, 2 on bad
usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import re
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge.cli.common import config_from
from bridge.config import DEFAULT_FILE, config_path
from bridge.connectors.prebuilt import PREBUILT, PrebuiltConnector, build_prebuilt
from bridge.connectors.prebuilt.credentials import ENV_PREFIX
from bridge.crm.phones import to_e164
from bridge.errors import CrmError, CrmRateLimited, CrmRefused, UsageError

DEFAULT_SECRETS = "crm-bridge.secrets"
ADVICE = {
    "credentials": "bad credentials: check the token / client id and secret, then run setup again",
    "scope": "missing scope or permission: grant the integration user read and write access "
    "to contacts and calls (see the README page of this connector)",
    "field": "field not found: the CRM lacks a field the preset mapping uses",
    "request": "the CRM refused the request",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    crm = sub.add_parser("crm", help="set up and check a prebuilt CRM connector")
    crm_sub = crm.add_subparsers(dest="crm_command", metavar="ACTION")
    crm_sub.required = True
    setup = crm_sub.add_parser("setup", help="write the [crm] section and the credentials file")
    setup.add_argument("connector", metavar="NAME", choices=sorted(PREBUILT))
    setup.add_argument("--url", default="", help="the CRM's API address (base_url)")
    setup.add_argument("--customer-url", default="", help="'open in CRM' link with {id}")
    setup.add_argument("--database", default="", help="odoo: the database name")
    setup.add_argument("--token-url", default="", help="OAuth token endpoint override")
    setup.add_argument(
        "--tags-field",
        default="",
        help="hubspot/salesforce/suitecrm: the contact field that takes the desk's tags",
    )
    setup.add_argument("--credentials-file", default=DEFAULT_SECRETS, metavar="PATH")
    setup.set_defaults(handler=run_setup)
    check = crm_sub.add_parser("check", help="authenticate, look a number up, show the card")
    check.add_argument("number", nargs="?", default="", metavar="NUMBER")
    check.set_defaults(handler=run_check)


# --- setup -------------------------------------------------------------------------------------


def _toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _ask(name: str, label: str) -> str:
    env = ENV_PREFIX + name.upper()
    if os.environ.get(env):
        return os.environ[env]
    if sys.stdin.isatty():
        return getpass.getpass(f"{label} {name.replace('_', ' ')}: ")
    return sys.stdin.readline().strip()


def write_private(path: Path, text: str) -> None:
    """Create or replace `path` readable by its owner only (never briefly world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def replace_section(document: str, name: str, body: str) -> str:
    """`document` with its `[name]` table replaced by `body` (appended when absent)."""
    lines = document.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.strip() == f"[{name}]"), None)
    if start is None:
        sep = "" if not document or document.endswith("\n\n") else "\n"
        return document + sep + body
    end = next(
        (i for i in range(start + 1, len(lines)) if re.match(r"^\s*\[", lines[i])), len(lines)
    )
    return "".join(lines[:start]) + body + ("\n" if end < len(lines) else "") + "".join(lines[end:])


def run_setup(args: argparse.Namespace) -> int:
    cls = PREBUILT[args.connector]
    if not args.url and not cls.default_base_url:
        raise UsageError(f"--url is required for {args.connector} (your instance's address)")
    if args.connector == "odoo" and not args.database:
        raise UsageError("--database is required for odoo")
    secrets = {name: _ask(name, cls.label) for name in cls.needs}
    hook_env = ENV_PREFIX + "WEBHOOK_SECRET"
    if cls.webhook and os.environ.get(hook_env):  # optional: only taken from the environment
        secrets["webhook_secret"] = os.environ[hook_env]
    for name, value in secrets.items():
        if not value or any(c in value for c in "\r\n\x00"):
            raise UsageError(f"{name}: an empty or multi-line value")
    secrets_path = Path(args.credentials_file).resolve()
    write_private(secrets_path, "".join(f"{k} = {_toml_string(v)}\n" for k, v in secrets.items()))
    values = {
        "connector": args.connector,
        "base_url": args.url,
        "customer_url": args.customer_url,
        "credentials_file": str(secrets_path),
        "token_url": args.token_url,
        "database": args.database,
        "tags_field": args.tags_field,
    }
    body = "[crm]\n" + "".join(f"{k} = {_toml_string(v)}\n" for k, v in values.items() if v)
    path = config_path(getattr(args, "config", None)) or Path(DEFAULT_FILE)
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    path.write_text(replace_section(current, "crm", body), encoding="utf-8")
    config_from(args)  # the result must load: a bad value fails here, naming the key
    print(f"{cls.label}: preset field mapping (our card <- {cls.label})")
    for ours, theirs in cls.preset.items():
        print(f"  {ours:<12} <- {theirs}")
    if cls.webhook:
        feed = f"webhook at POST /webhooks/crm/{args.connector}: {cls.webhook}; and polling"
        if "webhook_secret" not in secrets:
            feed += f" (webhook off: set ${hook_env} and run setup again)"
    else:
        feed = f"polling every [crm] poll_s ({cls.label} {cls.polling_only})"
    print(f"  {'changes':<12} <- {feed}")
    print(f"wrote [crm] to {path} and credentials to {secrets_path} (mode 0600)")
    print("next: crm-bridge crm check +NUMBER")
    return 0


# --- check -------------------------------------------------------------------------------------

SAMPLE_RECORD: dict[str, Any] = {
    "call_id": "check.1",
    "direction": "inbound",
    "queue": "support",
    "agents": [{"agent": "1001", "talk_s": 60}],
    "duration_s": 75,
    "talk_s": 60,
    "outcome": "answered",
    "recording_path": "check.1.wav",
    "disposition": "resolved",
    "notes": "sent by crm-bridge crm check (nothing is written)",
}


def _show(title: str, value: Any) -> None:
    print(f"{title}:")
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


async def _check(connector: PrebuiltConnector, number: str) -> int:
    await connector.start()
    try:
        customer = await connector.lookup(number)
        print(f"authenticated to {connector.label} at {connector.base_url}")
        if customer is None:
            print(f"{number}: no contact with this number")
            contact = ""
        else:
            contact = customer.id
            card = await connector.card(customer.id)
            _show("card", asdict(card) if card else asdict(customer))
        record = SAMPLE_RECORD | {
            "caller": number,
            "customer_id": contact or None,
            "started_at": datetime.now(UTC).isoformat(),
        }
        _show("a call record would send", connector.preview(record, contact))
        return 0
    finally:
        await connector.stop()


def run_check(args: argparse.Namespace) -> int:
    config = config_from(args)
    if config.crm.connector not in PREBUILT:
        raise UsageError(
            f"[crm] connector = {config.crm.connector!r}: check works with "
            + ", ".join(sorted(PREBUILT))
        )
    number = "+15550000000"
    if args.number:
        e164 = to_e164(args.number, config.pbx.default_region)
        if e164 is None:
            raise UsageError(f"{args.number[:40]!r} is not a phone number")
        number = e164
    connector = build_prebuilt(config.crm)
    try:
        return asyncio.run(_check(connector, number))
    except CrmRefused as exc:
        print(f"crm-bridge: {ADVICE.get(exc.kind, 'refused')} ({exc})", file=sys.stderr)
    except CrmRateLimited as exc:
        print(f"crm-bridge: rate-limited: try again in {exc.retry_after_s:.0f} s", file=sys.stderr)
    except CrmError as exc:
        print(f"crm-bridge: cannot use the CRM: {exc}", file=sys.stderr)
    return 1
