"""The hub's outside world: customer cards from the built-in CRM, sessions from the roster.

`build_pop_hub(pool, config, directory, roster, live=tracker)` wires a hub from the
configuration. A ringing call's card and routing reason come from memory when they can:
routing hands each decision over (`PostgresCards.routed`, keyed by the call) and starts
loading the customer's card, which is then kept by customer id until the directory's change
notices say it changed (`bridge.pops.card_cache`). Permissions still apply per page, after.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from bridge.config import Config
from bridge.crm.directory import CustomerDirectory, PostgresDirectory
from bridge.crm.phones import to_e164
from bridge.crm.roster import AgentRoster
from bridge.db.errors import map_db_errors
from bridge.models import CustomerCard, Decision, InboundCall
from bridge.pops.card import load_card
from bridge.pops.card_cache import CardCache
from bridge.pops.handoff import CallHandoff
from bridge.pops.hub import CardForCaller, CardSink, LiveCalls, PopHub
from bridge.pops.origins import default_origins
from bridge.pops.permissions import policy_from_config, visible_card

__all__ = ["PostgresCards", "build_pop_hub"]

_ROUTE_SQL = """
SELECT rule, queue, priority, degraded FROM route_decisions
 WHERE linkedid = $1 OR uniqueid = $1 ORDER BY decided_at, uniqueid LIMIT 1
"""


class PostgresCards:
    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        directory: CustomerDirectory,
        region: str,
        *,
        handoff: CallHandoff | None = None,
    ) -> None:
        self.pool = pool
        self.directory = directory
        self.region = region
        self.handoff = handoff or CallHandoff()
        # Cards are kept only where change notices are heard: the built-in directory's.
        self.cache = CardCache(self._load, lambda: False)
        if isinstance(directory, PostgresDirectory):
            listener = directory.listener
            self.cache = CardCache(self._load, lambda: listener.listening)
            directory.on_change(self._changed)
        self._observers: list[Callable[[str | None], None]] = []

    def on_change(self, observer: Callable[[str | None], None]) -> None:
        """`observer(customer_id)` after each change notice the cards heard (None: any)."""
        self._observers.append(observer)

    def _changed(self, customer_id: str | None) -> None:
        self.cache.invalidate(customer_id)
        for observer in self._observers:
            observer(customer_id)

    async def _load(self, customer_id: str) -> CustomerCard | None:
        return await load_card(self.pool, customer_id)

    def routed(self, call: InboundCall, decision: Decision) -> None:
        """The route service's hand-off (`RouteService.on_routed`): remember why this call
        came, and start loading its customer's card before the agent's phone rings."""
        routed = self.handoff.note(call, decision)
        if routed.customer_id is not None:
            self.cache.prefetch(routed.customer_id)

    async def card_for_caller(self, caller: str) -> CustomerCard | None:
        """The card of the customer owning the caller's number (directory cache first)."""
        e164 = to_e164(caller, self.region)
        if e164 is None:
            return None
        customer = await self.directory.lookup(e164)
        if customer is None:
            return None
        return await self.cache.get(customer.id)

    async def card_for_call(self, call_id: str, caller: str) -> CustomerCard | None:
        """The card of the customer routing found for this call, else the caller's."""
        routed = self.handoff.get(call_id)
        if routed is not None and routed.customer_id is not None:
            return await self.cache.get(routed.customer_id)
        return await self.card_for_caller(caller)

    async def route_for_call(self, call_id: str) -> dict[str, Any] | None:
        """Why the call came here: the first routing decision recorded for it."""
        routed = self.handoff.get(call_id)
        if routed is not None:
            return dict(routed.route)
        if not 0 < len(call_id) <= 150 or "\x00" in call_id:
            return None
        with map_db_errors("route decision query failed"):
            row = await self.pool.fetchrow(_ROUTE_SQL, call_id)
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
    cards: PostgresCards | None = None,
    **options: Any,
) -> PopHub:
    """A hub on [pops] host/port; origins default to [pops] origins, else the agent page's;
    cards come from the built-in CRM (`cards`, whose `routed` the route service should call)
    unless `card_for_caller` says otherwise."""
    if cards is None:
        cards = PostgresCards(pool, directory, config.pbx.default_region)
    if card_for_caller is None:
        card_for_caller = cards.card_for_caller
        options.setdefault("card_for_call", cards.card_for_call)
    options.setdefault("route_for_call", cards.route_for_call)
    options.setdefault("on_stop", cards.cache.close)
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
    hub = PopHub(
        sessions=roster,
        view_card=lambda viewer, card: visible_card(viewer, card, policy),
        card_seen=card_seen,
        card_for_caller=card_for_caller,
        live=live,
        origins=origins,
        **settings,
    )
    cards.on_change(hub.forget_cards)
    return hub
