"""`crm-bridge agents add | list`."""

from __future__ import annotations

import argparse
import asyncio

from bridge.cli.common import config_from, database_pool
from bridge.crm.agents import ROLES, create_agent, list_agents


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agents = sub.add_parser("agents", help="agents who receive screen-pops")
    actions = agents.add_subparsers(dest="agents_command", metavar="ACTION")
    actions.required = True

    add = actions.add_parser("add", help="create an agent and print its access token once")
    add.add_argument("id")
    add.add_argument("--name", required=True)
    add.add_argument("--role", choices=ROLES, default="agent")
    add.add_argument("--device", metavar="EXT", help="the agent's extension (default: ID)")
    add.set_defaults(handler=_add)

    actions.add_parser("list", help="show the agents").set_defaults(handler=_list)


def _add(args: argparse.Namespace) -> int:
    config = config_from(args)

    async def go() -> str:
        async with database_pool(config) as pool:
            return await create_agent(pool, args.id, args.name, args.role, args.device)

    token = asyncio.run(go())
    print(f"agent {args.id} {token}")
    return 0


def _list(args: argparse.Namespace) -> int:
    config = config_from(args)

    async def go() -> int:
        async with database_pool(config) as pool:
            agents = await list_agents(pool)
        if not agents:
            print("no agents")
        for agent in agents:
            state = "" if agent.active else " (inactive)"
            print(f"{agent.id}  {agent.name}  role={agent.role} device={agent.device}{state}")
        return 0

    return asyncio.run(go())
