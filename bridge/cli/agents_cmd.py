"""`crm-bridge agents add | list | token | disable`.

`token` and `disable` change the agent's row and write an audit entry (actor `cli`) in one
transaction. Open pop sessions are closed by the running bridge, which listens for changes
to agents (close code 4003); the old token stops authenticating at once either way.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
from typing import Any

import asyncpg

from bridge.cli.common import config_from, database_pool
from bridge.crm import audit
from bridge.crm.agents import ROLES, create_agent, hash_token, list_agents
from bridge.db.errors import map_db_errors
from bridge.errors import NotFound

_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_COLUMNS = "id, name, role, device, active"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agents = sub.add_parser("agents", help="agents who receive screen-pops")
    actions = agents.add_subparsers(dest="agents_command", metavar="ACTION")
    actions.required = True

    add = actions.add_parser("add", help="create an agent and print its access token once")
    add.add_argument("id")
    add.add_argument("--name", required=True)
    add.add_argument("--role", choices=ROLES, default="agent")
    add.add_argument("--device", metavar="EXT", help="the agent's extension (default: ID)")
    add.add_argument(
        "--pbx", metavar="NAME", help="the [[pbx]] entry of the device (default: the first)"
    )
    add.set_defaults(handler=_add)

    actions.add_parser("list", help="show the agents").set_defaults(handler=_list)

    token = actions.add_parser(
        "token", help="reissue an agent's token and print it once (the old one stops working)"
    )
    token.add_argument("id")
    token.set_defaults(handler=_token)

    disable = actions.add_parser("disable", help="disable an agent (its token stops working)")
    disable.add_argument("id")
    disable.set_defaults(handler=_disable)


def _add(args: argparse.Namespace) -> int:
    config = config_from(args, database=True)

    async def go() -> str:
        async with database_pool(config) as pool:
            # Several PBXs: the device is on the named one, else on the first listed.
            pbx = (args.pbx or config.pbxs[0].name) if config.pbx_sites else ""
            return await create_agent(pool, args.id, args.name, args.role, args.device, pbx)

    token = asyncio.run(go())
    print(f"agent {args.id} {token}")
    return 0


def _list(args: argparse.Namespace) -> int:
    config = config_from(args, database=True)

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


async def _change(pool: asyncpg.Pool[Any], aid: str, action: str, sql: str, *args: Any) -> None:
    """Lock the agent's row, apply `sql` ($1 = id), audit before/after; NotFound if absent."""
    if not _ID.fullmatch(aid):
        raise NotFound(f"no agent {aid[:64]!r}")
    with map_db_errors(f"cannot change agent {aid}"):
        async with pool.acquire() as conn, conn.transaction():
            before = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM agents WHERE id = $1 FOR UPDATE", aid
            )
            if before is None:
                raise NotFound(f"no agent {aid!r}")
            await conn.execute(sql, aid, *args)
            after = await conn.fetchrow(f"SELECT {_COLUMNS} FROM agents WHERE id = $1", aid)
            await audit.record(
                conn,
                actor=audit.CLI_ACTOR,
                action=action,
                target_type="agent",
                target_id=aid,
                before=dict(before),
                after=dict(after or {}),
            )


def _token(args: argparse.Namespace) -> int:
    config = config_from(args, database=True)
    token = secrets.token_urlsafe(32)

    async def go() -> None:
        async with database_pool(config) as pool:
            await _change(
                pool,
                args.id,
                "agent.token",
                "UPDATE agents SET token_hash = $2, updated_at = now() WHERE id = $1",
                hash_token(token),
            )

    asyncio.run(go())
    print(f"agent {args.id} {token}")
    return 0


def _disable(args: argparse.Namespace) -> int:
    config = config_from(args, database=True)

    async def go() -> None:
        async with database_pool(config) as pool:
            await _change(
                pool,
                args.id,
                "agent.disable",
                "UPDATE agents SET active = false, updated_at = now() WHERE id = $1",
            )

    asyncio.run(go())
    print(f"agent {args.id} disabled")
    return 0
