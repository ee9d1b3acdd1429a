"""`crm-bridge dial AGENT NUMBER`: place a click-to-call for AGENT from the command line.

The same `Dialer` as the desk and the admin API (checks, rate limit, audit with actor
`cli`), over a short-lived AMI connection of its own: AGENT's device rings, and when the
agent answers the PBX dials NUMBER through `[pbx] outbound_context`. Prints the call id.
With several PBXs (`[[pbx]]`), the connection is to the agent's own PBX.
A refused number, an unknown or disabled agent is exit 2 with the reason.
"""

from __future__ import annotations

import argparse
import asyncio

from bridge.ami.link import AmiLink
from bridge.cli.common import config_from, database_pool
from bridge.crm.agents import get_agent
from bridge.dial.service import Dialer, DialForbidden, NumberRefused
from bridge.errors import LinkDown, NotFound, UsageError

CONNECT_S = 10.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dial = sub.add_parser("dial", help="ring an agent's device, then dial a number")
    dial.add_argument("agent", metavar="AGENT")
    dial.add_argument("number", metavar="NUMBER")
    dial.set_defaults(handler=_dial)


def _dial(args: argparse.Namespace) -> int:
    config = config_from(args, runtime=True, database=True)

    async def run() -> str:
        async with database_pool(config) as pool:
            agent = await get_agent(pool, args.agent[:64])
            if agent is None:
                raise NotFound(f"no agent {args.agent[:64]!r}")
            # Several PBXs: the agent's own (an agent on none may not dial: the Dialer says so).
            site = next((p for p in config.pbxs if p.name == agent.pbx), config.pbxs[0])
            link = AmiLink(site.ami)  # actions only: its events go nowhere
            await link.start()
            try:
                try:
                    await asyncio.wait_for(link.connected(), CONNECT_S)
                except TimeoutError as exc:
                    raise LinkDown(f"cannot reach AMI at {site.ami.host}:{site.ami.port}") from exc
                sites = {site.name: (site, link.action)} if config.pbx_sites else None
                dialer = Dialer(pool, config, link.action, sites=sites)
                try:
                    dialed = await dialer.dial(agent, args.number, actor="cli")
                except (NumberRefused, DialForbidden) as exc:
                    raise UsageError(str(exc)) from exc
                return dialed.call_id
            finally:
                await link.stop()

    print(asyncio.run(run()))
    return 0
