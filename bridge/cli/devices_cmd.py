"""`crm-bridge devices test CHANNEL...`: which agent a channel name maps to.

For each name: the extension `[pbx] device_pattern` extracts (and which of the patterns did),
then the agent whose device it is. A name that maps to no agent (a trunk, a FreePBX hop such
as `Local/600@ext-group`) is never taken for an agent by the call tracker: this shows why.
Agents are read from the configured database; `--no-db` shows the extensions only. With
several PBXs (`[[pbx]]`), `--pbx NAME` says whose channel names these are (default: the first).
"""

from __future__ import annotations

import argparse
import asyncio

from bridge.cli.common import config_from, database_pool
from bridge.crm.agents import bridge_device, list_agents
from bridge.devices import DevicePatterns, explain
from bridge.errors import UsageError

MAX_NAME = 512  # an AMI channel name is far shorter; refuse pasted garbage clearly


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    devices = sub.add_parser("devices", help="how channel names map to agents")
    actions = devices.add_subparsers(dest="devices_command", metavar="ACTION")
    actions.required = True
    test = actions.add_parser("test", help="show the agent each channel name maps to")
    test.add_argument("channels", nargs="+", metavar="CHANNEL")
    test.add_argument("--no-db", action="store_true", help="extensions only, no agent lookup")
    test.add_argument("--pbx", metavar="NAME", help="the [[pbx]] entry (default: the first)")
    test.set_defaults(handler=_test)


def _test(args: argparse.Namespace) -> int:
    config = config_from(args)
    site = config.pbxs[0]
    if args.pbx is not None:
        found_site = next((p for p in config.pbxs if p.name == args.pbx), None)
        if found_site is None:
            raise UsageError(f"--pbx: no [[pbx]] entry named {args.pbx[:40]!r}")
        site = found_site
    patterns = DevicePatterns.parse(site.pbx.device_pattern)
    for name in args.channels:
        if len(name) > MAX_NAME or any(ch in name for ch in "\r\n\x00"):
            raise UsageError(f"not a channel name: {name[:40]!r}")

    async def agents_by_device() -> dict[str, str]:
        async with database_pool(config) as pool:
            return {bridge_device(a): a.id for a in await list_agents(pool) if a.active}

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
        elif site.qualify(ext) in agents:
            print(f"{name} -> extension {ext}{which} -> agent {agents[site.qualify(ext)]}")
        else:
            print(f"{name} -> extension {ext}{which} -> no agent has this device: not an agent")
    return 0
