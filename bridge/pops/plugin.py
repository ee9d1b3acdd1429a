"""The pops' plugins: the card-view audit (`card_views`), the pop hub (`pops`) on the
`[pops]` port, and the agent's page and desk on the `[http]` port (`/agent`, `/wallboard`).

The hub takes the tracker's call events inline, in PBX order, once the AMI link exists.
With a prebuilt connector, the cards come from that CRM (its deals, cases).
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.ami.plugin import LINK_USERS, TRACKER
from bridge.ami.sites import SiteLink
from bridge.connectors import CrmConnector
from bridge.connectors.plugin import CRM_CONNECTOR
from bridge.connectors.prebuilt import PrebuiltConnector
from bridge.connectors.prebuilt.cache import PrebuiltDirectory
from bridge.crm.phones import to_e164
from bridge.crm.plugin import AGENT_ROSTER, CUSTOMER_DIRECTORY
from bridge.models import CustomerCard
from bridge.pbx.regions import PbxRegions
from bridge.plugin import Context, Http, Key, Plugin
from bridge.pops.agent_routes import AgentDeps, setup_agent_routes
from bridge.pops.card_views import CardViewAudit
from bridge.pops.hub import CardForCaller, PopHub
from bridge.pops.sources import PostgresCards, build_pop_hub
from bridge.records.plugin import CALL_PARTICIPANTS
from bridge.routing.plugin import ROUTE_SERVICE

__all__ = ["CARD_VIEWS", "POPS", "POP_HUB", "external_cards"]

POP_HUB: Key[PopHub] = Key("pops")
_CARD_VIEWS: Key[CardViewAudit] = Key("card_views")


def external_cards(connector: CrmConnector, region: str) -> CardForCaller | None:
    """A prebuilt connector's cards (its deals, cases) for the pops; None: the built-in CRM's."""
    if not isinstance(connector, PrebuiltConnector | PrebuiltDirectory):
        return None

    async def card_for_caller(caller: str) -> CustomerCard | None:
        e164 = to_e164(caller, region)
        customer = await connector.lookup(e164) if e164 is not None else None
        return None if customer is None else await connector.card(customer.id)

    return card_for_caller


def _card_views(ctx: Context) -> CardViewAudit:
    return ctx.provide(_CARD_VIEWS, CardViewAudit(ctx.pool))


def _hub(ctx: Context) -> PopHub:
    cfg = ctx.config
    # Card hand-off: routing tells the pops each call's customer and reason, and the cards
    # are cached by customer under the directory's change notices. Only when routing looks
    # callers up in the built-in CRM: its customer ids are the cards' ids.
    cards = PostgresCards(ctx.pool, ctx.need(CUSTOMER_DIRECTORY), cfg.pbx.default_region)
    if cfg.crm.connector == "builtin":
        ctx.need(ROUTE_SERVICE).on_routed(cards.routed)
    hub = build_pop_hub(
        ctx.pool,
        cfg,
        ctx.need(CUSTOMER_DIRECTORY),
        ctx.need(AGENT_ROSTER),
        live=ctx.need(TRACKER),
        card_seen=ctx.need(_CARD_VIEWS).note,
        card_for_caller=external_cards(ctx.need(CRM_CONNECTOR), cfg.pbx.default_region),
        cards=cards,
    )
    ctx.provide(POP_HUB, hub)

    def attach(sites: Sequence[SiteLink]) -> None:
        for site in sites:  # inline, in each PBX's order
            site.observe_calls(hub.dispatch)

    ctx.need(LINK_USERS).add(attach)
    return hub


def _agent_routes(http: Http, ctx: Context) -> None:
    cfg = ctx.config
    hub = ctx.need(POP_HUB)
    participants = ctx.maybe(CALL_PARTICIPANTS)
    deps = AgentDeps(
        ctx.pool,
        lambda: hub.port,
        settle=None if participants is None else participants.drain,
        regions=PbxRegions.of(cfg),
        timezone=cfg.routing.timezone,
        tag_colors=cfg.pops.tag_colors,
        customer_url=cfg.crm.customer_url,
        sla_s=cfg.wallboard.sla_s,
        connector=ctx.need(CRM_CONNECTOR),
        agents_edit=cfg.permissions.agents_edit,
    )
    setup_agent_routes(http.app, deps)


CARD_VIEWS = Plugin("card_views", build=_card_views)
POPS = Plugin("pops", build=_hub, routes=_agent_routes)
