"""The routing plugins: the rule store (`rules`, with the rule routes of the admin API) and
the route service (`route`) the FastAGI server and the Stasis app ask.

The rule store subscribes to the shared listener in `prepare`, before it starts. With an
external CRM (rest or a prebuilt connector), lookups go there under the same budget; the
built-in CRM answers from its cached directory.
"""

from __future__ import annotations

from bridge.alerts.plugin import ROUTE_DECISIONS
from bridge.connectors.plugin import CRM_CONNECTOR
from bridge.crm.directory import CustomerDirectory
from bridge.crm.plugin import CUSTOMER_DIRECTORY, PG_LISTENER
from bridge.plugin import Context, Http, Key, Plugin
from bridge.routing.rules_api import setup_rules_api
from bridge.routing.service import PostgresDecisionLog, RouteService
from bridge.routing.store import RuleStore

__all__ = ["ROUTE", "ROUTE_SERVICE", "RULES", "RULE_STORE"]

RULE_STORE: Key[RuleStore] = Key("rules")
ROUTE_SERVICE: Key[RouteService] = Key("route")


def _prepare_rules(ctx: Context) -> None:
    ctx.provide(RULE_STORE, RuleStore(ctx.pool, listener=ctx.need(PG_LISTENER)))


def _rules_routes(http: Http, ctx: Context) -> None:
    setup_rules_api(http.api, ctx.pool)


def _route(ctx: Context) -> RouteService:
    external = ctx.config.crm.connector != "builtin"
    directory: CustomerDirectory = (
        ctx.need(CRM_CONNECTOR) if external else ctx.need(CUSTOMER_DIRECTORY)
    )
    # Decisions are recorded next to the rules, in the bridge's database.
    decisions = PostgresDecisionLog(ctx.pool)
    service = RouteService(directory, ctx.need(RULE_STORE), ctx.config, decisions=decisions)
    ctx.provide(ROUTE_SERVICE, service)
    ctx.provide(ROUTE_DECISIONS, service.on_decision)  # the monitor's degraded-routing watch
    return service


RULES = Plugin(
    "rules", prepare=_prepare_rules, build=lambda ctx: ctx.need(RULE_STORE), routes=_rules_routes
)
ROUTE = Plugin("route", build=_route)
