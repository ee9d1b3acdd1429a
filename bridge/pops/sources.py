"""The hub's outside world over the built-in CRM: agents, customer cards, participants.

`PostgresPopSources(pool, directory, region)` gives the callables `PopHub` takes, and
`build_pop_hub(pool, config, directory, origins=...)` wires a hub from the configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from bridge.config import Config
from bridge.crm import agents
from bridge.crm.agents import Agent
from bridge.crm.directory import CustomerDirectory
from bridge.crm.phones import normalise
from bridge.errors import CrmUnavailable
from bridge.pops.card import CustomerCard, load_card
from bridge.pops.hub import PopHub
from bridge.pops.origins import default_origins

__all__ = ["PostgresPopSources", "build_pop_hub", "record_participant", "record_participants"]

_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


async def record_participants(
    pool: asyncpg.Pool[Any], rows: Sequence[tuple[str, str, str]]
) -> None:
    """Insert (call_id, agent_id, how) rows in one statement; duplicates are ignored."""
    rows = [(c[:150], a, h) for c, a, h in rows if c]
    if not rows:
        return
    try:
        await pool.execute(
            "INSERT INTO call_participants (call_id, agent_id, how)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING",
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
        )
    except _DB_ERRORS as exc:
        raise CrmUnavailable(f"cannot record call participants: {exc}") from exc


async def record_participant(
    pool: asyncpg.Pool[Any], call_id: str, agent_id: str, how: str
) -> None:
    await record_participants(pool, [(call_id, agent_id, how)])


class PostgresPopSources:
    def __init__(self, pool: asyncpg.Pool[Any], directory: CustomerDirectory, region: str) -> None:
        self.pool = pool
        self.directory = directory
        self.region = region

    async def authenticate(self, token: str) -> Agent | None:
        return await agents.authenticate(self.pool, token)

    async def agent_by_device(self, device: str) -> Agent | None:
        return await agents.agent_by_device(self.pool, device)

    async def card_for_caller(self, caller: str) -> CustomerCard | None:
        """The card of the customer owning the caller's number (directory cache first)."""
        e164 = normalise(caller, self.region)
        if e164 is None:
            return None
        customer = await self.directory.lookup(e164)
        if customer is None:
            return None
        return await load_card(self.pool, customer.id)

    async def record_participants(self, rows: Sequence[tuple[str, str, str]]) -> None:
        await record_participants(self.pool, rows)


def build_pop_hub(
    pool: asyncpg.Pool[Any],
    config: Config,
    directory: CustomerDirectory,
    *,
    origins: Sequence[str] | Callable[[], Sequence[str]] | None = None,
    **options: Any,
) -> PopHub:
    """A hub on [pops] host/port; origins default to [pops] origins, else the agent page's."""
    sources = PostgresPopSources(pool, directory, config.pbx.default_region)
    if origins is None:
        origins = list(config.pops.origins) or default_origins(config.http.host, config.http.port)
    settings: dict[str, Any] = {
        "host": config.pops.host,
        "port": config.pops.port,
        "client_queue": config.pops.client_queue,
        **options,
    }
    return PopHub(
        authenticate=sources.authenticate,
        agent_by_device=sources.agent_by_device,
        card_for_caller=sources.card_for_caller,
        record_participant=sources.record_participants,
        origins=origins,
        **settings,
    )
