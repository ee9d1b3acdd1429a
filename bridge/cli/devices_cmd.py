"""`crm-bridge devices test CHANNEL...`: which agent a channel name maps to.

For each name: the extension `[pbx] device_pattern` extracts (and which of the patterns did),
then the agent whose device it is. A name that maps to no agent (a trunk, a FreePBX hop such
as `Local/600@ext-group`) is never taken for an agent by the call tracker: this shows why.
Agents are read from the configured database; `--no-db` shows the extensions only.
"""

from __future__ import annotations

import argparse
import asyncio

from bridge.cli.common import config_from, database_pool
from bridge.crm.agents import list_agents
from bridge.devices import explain
from bridge.errors import UsageError

MAX_NAME = 512  # an AMI channel name is far shorter; refuse pasted garbage clearly


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    devices = sub.add_parser("devices", help="how channel names map to agents")
    actions = devices.add_subparsers(dest="devices_command", metavar="ACTION")
    actions.required = True
    test = actions.add_parser("test", help="show the agent each channel name maps to")
    test.add_argument("channels", nargs="+", metavar="CHANNEL")
    test.add_argument("--no-db", action="store_true", help="extensions only, no agent lookup")
    test.set_defaults(handler=_test)


def _test(args: argparse.Namespace) -> int:
    config = config_from(args)
    patterns = config.device_regex
    for name in args.channels:
        if len(name) > MAX_NAME or any(ch in name for ch in "\r\n\x00"):
            raise UsageError(f"not a channel name: {name[:40]!r}")

    async def agents_by_device() -> dict[str, str]:
        async with database_pool(config) as pool:
            return {a.device: a.id for a in await list_agents(pool) if a.active}

    agents = None if args.no_db else asyncio.run(agents_by_device())
    several = len(patterns.patterns) > 1
    for name in args.channels:
        found = explain(patterns, name)
        if found is None:
            print(f"{name} -> no extension (no device_pattern matches): not an agent")
            continue
        ext, index = found
        which = f" (pattern {index + 1})" if several else ""
        if agents is None:
            print(f"{name} -> extension {ext}{which}")
        elif ext in agents:
            print(f"{name} -> extension {ext}{which} -> agent {agents[ext]}")
        else:
            print(f"{name} -> extension {ext}{which} -> no agent has this device: not an agent")
    return 0
