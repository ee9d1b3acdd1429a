"""The built-in CRM's plugins: the shared LISTEN connection, the customer directory, the
agent roster, and the CRM's HTTP routes (agents, customers and the audit trail in the admin
API; the CRM's change feed, `POST /crm/webhook`).

The directory and the roster subscribe to the listener in `prepare`, before it starts.
"""

from __future__ import annotations

from bridge.alerts.plugin import CHANGE_LAG
from bridge.crm.agents import authenticate
from bridge.crm.agents_api import setup_agents_api
from bridge.crm.audit_api import setup_audit_api
from bridge.crm.customers_api import CustomersApiDeps, setup_customers_api
from bridge.crm.directory import PostgresDirectory
from bridge.crm.listener import PgListener
from bridge.crm.roster import AgentRoster
from bridge.crm.webhook import WebhookDeps, setup_webhook_routes
from bridge.plugin import Context, Http, Key, Plugin
from bridge.web.auth import ADMIN_TOKENS

__all__ = ["CRM_API", "DIRECTORY", "LISTENER", "ROSTER", "WEBHOOK"]

PG_LISTENER: Key[PgListener] = Key("listener")
CUSTOMER_DIRECTORY: Key[PostgresDirectory] = Key("directory")
AGENT_ROSTER: Key[AgentRoster] = Key("roster")


def _prepare_listener(ctx: Context) -> None:
    # One LISTEN connection shared by the directory, the rule store, the agent roster and
    # the merge notices; they subscribe in their `prepare`, before it starts.
    ctx.provide(PG_LISTENER, PgListener(ctx.pool, keepalive_s=10.0, name="crm-listener"))


def _prepare_directory(ctx: Context) -> None:
    ctx.provide(CUSTOMER_DIRECTORY, PostgresDirectory(ctx.pool, listener=ctx.need(PG_LISTENER)))


def _prepare_roster(ctx: Context) -> None:
    ctx.provide(AGENT_ROSTER, AgentRoster(ctx.pool, ctx.need(PG_LISTENER)))


def _prepare_api(ctx: Context) -> None:
    pool = ctx.pool
    ctx.provide(ADMIN_TOKENS, lambda token: authenticate(pool, token))


def _api_routes(http: Http, ctx: Context) -> None:
    setup_agents_api(http.api, ctx.pool, [site.name for site in ctx.config.pbx_sites])
    setup_customers_api(http.api, CustomersApiDeps(ctx.pool, ctx.config.pbx.default_region))
    setup_audit_api(http.api, ctx.pool)


def _webhook_routes(http: Http, ctx: Context) -> None:
    lag = ctx.maybe(CHANGE_LAG)  # the monitor's change-lag meter
    deps = WebhookDeps(
        pool=ctx.pool, config=ctx.config, on_change_lag=None if lag is None else lag.observe
    )
    setup_webhook_routes(http.app, deps)


LISTENER = Plugin("listener", prepare=_prepare_listener, build=lambda ctx: ctx.need(PG_LISTENER))
DIRECTORY = Plugin(
    "directory", prepare=_prepare_directory, build=lambda ctx: ctx.need(CUSTOMER_DIRECTORY)
)
ROSTER = Plugin("roster", prepare=_prepare_roster, build=lambda ctx: ctx.need(AGENT_ROSTER))
CRM_API = Plugin("crm_api", prepare=_prepare_api, routes=_api_routes)
WEBHOOK = Plugin("crm_webhook", routes=_webhook_routes)
