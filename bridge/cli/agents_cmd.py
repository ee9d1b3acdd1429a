"""`crm-bridge agents` (placeholder until its owner lands it)."""

from __future__ import annotations

import argparse

from bridge.errors import UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("agents", help="(not yet available)").set_defaults(handler=_missing)


def _missing(args: argparse.Namespace) -> int:
    raise UsageError("'agents' is not available yet")
