"""`crm-bridge` entry point: parses arguments, dispatches, maps errors to exit codes.

Each sub-command lives in its own module exposing `register(subparsers)`, which adds its
parser and sets `handler` to a function `(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from bridge.errors import (
    AuthError,
    BridgeError,
    ConfigError,
    CrmError,
    NotFound,
    UsageError,
    ValidationError,
)

COMMAND_MODULES = (
    "bridge.cli.db_cmd",
    "bridge.cli.run_cmd",
    "bridge.cli.demo_cmd",
    "bridge.cli.rules_cmd",
    "bridge.cli.agents_cmd",
    "bridge.cli.customers_cmd",
    "bridge.cli.sync_cmd",
    "bridge.cli.crm_cmd",
    "bridge.cli.doctor_cmd",
    "bridge.cli.devices_cmd",
    "bridge.cli.dial_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crm-bridge", description="Join an Asterisk PBX to a CRM."
    )
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    try:
        return int(args.handler(args))
    except (ConfigError, UsageError, ValidationError, NotFound) as exc:
        # Naming a rule or agent that does not exist is bad usage: exit 2, like a bad flag.
        print(f"crm-bridge: {exc}", file=sys.stderr)
        return 2
    except AuthError as exc:
        print(f"crm-bridge: {exc}", file=sys.stderr)
        return 1
    except CrmError as exc:
        print(f"crm-bridge: database or CRM unavailable: {exc}", file=sys.stderr)
        return 1
    except BridgeError as exc:
        print(f"crm-bridge: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
