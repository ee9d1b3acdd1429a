"""The hub's outside world: customer cards from the built-in CRM, sessions from the roster.

`build_pop_hub(pool, config, directory, roster, live=tracker)` wires a hub from the
configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from bridge.config import Config
from bridge.crm.directory import CustomerDirectory
from bridge.crm.phones import to_e164
from bridge.crm.roster import AgentRoster
from bridge.errors import CrmUnavailable
from bridge.pops.card import CustomerCard, load_card
from bridge.pops.hub import CardForCaller, CardSink, LiveCalls, PopHub
from bridge.pops.origins import default_origins
from bridge.pops.permissions import policy_from_config, visible_card

__all__ = ["PostgresCards", "build_pop_hub"]

_ROUTE_SQL = """
SELECT rule, queue, priority, degraded FROM route_decisions
 WHERE linkedid = $1 OR uniqueid = $1 ORDER BY decided_at, uniqueid LIMIT 1
"""


class PostgresCards:
    def __init__(self, pool: asyncpg.Pool[Any], directory: CustomerDirectory, region: str) -> None:
        self.pool = pool
        self.directory = directory
        self.region = region

    async def card_for_caller(self, caller: str) -> CustomerCard | None:
        """The card of the customer owning the caller's number (directory cache first)."""
        e164 = to_e164(caller, self.region)
        if e164 is None:
            return None
        customer = await self.directory.lookup(e164)
        if customer is None:
            return None
        return await load_card(self.pool, customer.id)

    async def route_for_call(self, call_id: str) -> dict[str, Any] | None:
        """Why the call came here: the first routing decision recorded for it."""
        if not 0 < len(call_id) <= 150 or "\x00" in call_id:
            return None
        try:
            row = await self.pool.fetchrow(_ROUTE_SQL, call_id)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise CrmUnavailable(f"route decision query failed: {exc}") from exc
        return None if row is None else dict(row)


def build_pop_hub(
    pool: asyncpg.Pool[Any],
    config: Config,
    directory: CustomerDirectory,
    roster: AgentRoster,
    *,
    live: LiveCalls | None = None,
    origins: Sequence[str] | Callable[[], Sequence[str]] | None = None,
    card_for_caller: CardForCaller | None = None,
    card_seen: CardSink | None = None,
    **options: Any,
) -> PopHub:
    """A hub on [pops] host/port; origins default to [pops] origins, else the agent page's;
    cards come from the built-in CRM unless `card_for_caller` says otherwise."""
    cards = PostgresCards(pool, directory, config.pbx.default_region)
    if card_for_caller is None:
        card_for_caller = cards.card_for_caller
    options.setdefault("route_for_call", cards.route_for_call)
    if origins is None:
        origins = list(config.pops.origins) or default_origins(config.http.host, config.http.port)
    settings: dict[str, Any] = {
        "host": config.pops.host,
        "port": config.pops.port,
        "client_queue": config.pops.client_queue,
        "max_connections": config.pops.max_connections,
        **options,
    }
    policy = policy_from_config(config.permissions)
    return PopHub(
        sessions=roster,
        view_card=lambda viewer, card: visible_card(viewer, card, policy),
        card_seen=card_seen,
        card_for_caller=card_for_caller,
        live=live,
        origins=origins,
        **settings,
    )
