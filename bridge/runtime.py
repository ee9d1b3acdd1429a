"""The composition root: builds every part of the bridge, starts them in order, stops them in
reverse (an `AsyncExitStack`).

`COMPONENTS` is the registry: `(name, factory)` pairs, started in that order. A factory takes
the `Runtime` (config, database pool, the parts built so far) and returns a `Component`, or
None when its feature is disabled. Adding a feature is one line here, e.g.
`("ami", _ami)`, with `_ami(rt)` reading `rt.config` and `rt.components["…"]`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from bridge.agi import build_agi_server
from bridge.alerts.wiring import build_monitor, change_lag
from bridge.ami.link import AmiLink
from bridge.ami.normalise import CdrRecord
from bridge.ari import build_ari_app
from bridge.component import Component, Health
from bridge.config import Config
from bridge.connectors.prebuilt import PrebuiltConnector
from bridge.crm.directory import PostgresDirectory
from bridge.crm.listener import PgListener
from bridge.crm.merge_notice import MergeNotifier
from bridge.crm.phones import normalise
from bridge.crm.roster import AgentRoster
from bridge.crm.webhook import WebhookDeps, setup_webhook_routes
from bridge.db.embedded import database_url
from bridge.db.health import DatabaseHealth
from bridge.db.pool import create_pool
from bridge.dial.routes import DialDeps, setup_dial_routes
from bridge.dial.service import Dialer
from bridge.netguard import raise_open_files_limit
from bridge.pops.agent_routes import AgentDeps, setup_agent_routes
from bridge.pops.card import CustomerCard
from bridge.pops.card_views import CardViewAudit
from bridge.pops.hub import CardForCaller, PopHub
from bridge.pops.sources import build_pop_hub
from bridge.records.participants import ParticipantRecorder
from bridge.records.wiring import RecordsParts, build_records
from bridge.routing.service import RouteService
from bridge.routing.store import RuleStore
from bridge.sync.periodic import build_reconciler
from bridge.tracker import CallTracker
from bridge.wallboard.ami import AmiQueues
from bridge.wallboard.board import WallBoard
from bridge.web import make_web_app
from bridge.web.admin import AdminDeps, setup_admin_routes
from bridge.web.server import HttpServer

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What factories build on; `components` holds the started parts by name, in order."""

    config: Config
    pool: asyncpg.Pool[Any]
    components: dict[str, Component] = field(default_factory=dict)
    built: dict[str, Any] = field(default_factory=dict)  # made by one factory for a later one

    def health(self) -> dict[str, Health]:
        states = {name: component.health() for name, component in self.components.items()}
        for name in CONTRACT_HEALTH_NAMES:  # a disabled part still shows, as "disabled"
            states.setdefault(name, Health("disabled", required=False))
        return states

    def get(self, name: str) -> Any:
        return self.components[name]


Factory = Callable[[Runtime], Component | None]

# /healthz always names these (CONTRACT), even when one is disabled by configuration.
CONTRACT_HEALTH_NAMES = ("ami", "ari", "database", "agi", "pops")


def _database(rt: Runtime) -> Component:
    return DatabaseHealth(rt.pool)


def _listener(rt: Runtime) -> Component:
    # One LISTEN connection shared by the directory, the rule store and the agent roster. They
    # subscribe in their constructors, which must run before the listener starts: build them here.
    listener = PgListener(rt.pool, keepalive_s=10.0, name="crm-listener")
    rt.built["directory"] = PostgresDirectory(rt.pool, listener=listener)
    rt.built["rules"] = RuleStore(rt.pool, listener=listener)
    rt.built["roster"] = AgentRoster(rt.pool, listener)
    # Tells the CRM connector of customer merges; the connector is built later (with the
    # records), and only used once everything before `merge_notice` has started.
    rt.built["merge_notice"] = MergeNotifier(
        rt.pool,
        lambda record: _records(rt).connector.merged(record),
        listener=listener,
        retry_s=rt.config.crm.merge_retry_s,
    )
    return listener


def _directory(rt: Runtime) -> Component:
    return rt.built.pop("directory")


def _rules(rt: Runtime) -> Component:
    return rt.built.pop("rules")


def _roster(rt: Runtime) -> Component:
    return rt.built.pop("roster")


def _tracker(rt: Runtime) -> CallTracker:
    """The one live-call truth: fed by the AMI link, read by the pop hub."""
    tracker: CallTracker | None = rt.built.get("tracker")
    if tracker is None:
        found = rt.components.get("roster") or rt.built.get("roster")
        roster = found if isinstance(found, AgentRoster) else None
        # Agents are devices of the roster: Local hops and trunks are never listed as agents.
        is_agent = None if roster is None else (lambda ext: roster.agent_id_of(ext) is not None)
        tracker = CallTracker(
            rt.config.device_regex, max_call_s=rt.config.pbx.max_call_s, is_agent=is_agent
        )
        rt.built["tracker"] = tracker
    return tracker


def _records(rt: Runtime) -> RecordsParts:
    parts: RecordsParts | None = rt.built.get("records")
    if parts is None:
        spool = Path(rt.config.records.spool_dir) if rt.config.records.spool_dir else None
        parts = build_records(rt.config, rt.pool, directory=rt.get("directory"), spool_dir=spool)
        rt.built["records"] = parts
    return parts


def _route(rt: Runtime) -> Component:
    # With an external CRM (rest or a prebuilt connector), lookups go there under the same
    # budget; the built-in CRM answers from its cached directory.
    external = rt.config.crm.connector != "builtin"
    directory = _records(rt).connector if external else rt.get("directory")
    return RouteService(directory, rt.get("rules"), rt.config)


def _pops(rt: Runtime) -> Component:
    roster: AgentRoster = rt.get("roster")
    audit: CardViewAudit = rt.get("card_views")
    return build_pop_hub(
        rt.pool,
        rt.config,
        rt.get("directory"),
        roster,
        live=_tracker(rt),
        card_seen=audit.note,
        card_for_caller=_external_cards(rt),
    )


def _external_cards(rt: Runtime) -> CardForCaller | None:
    """A prebuilt connector's cards (its deals, cases) for the pops; None: the built-in CRM's."""
    connector = _records(rt).connector
    if not isinstance(connector, PrebuiltConnector):
        return None
    region = rt.config.pbx.default_region

    async def card_for_caller(caller: str) -> CustomerCard | None:
        e164 = normalise(caller, region)
        customer = await connector.lookup(e164) if e164 is not None else None
        return None if customer is None else await connector.card(customer.id)

    return card_for_caller


def _wallboard(rt: Runtime) -> Component:
    """Queue figures for supervisors; pauses from the agents' desks (the PBX side is added
    with the AMI link)."""
    roster: AgentRoster = rt.get("roster")
    hub: PopHub = rt.get("pops")
    board = WallBoard(
        _tracker(rt),
        agent_of=roster.agent_id_of,
        sla_s=rt.config.wallboard.sla_s,
        wrapup_s=rt.config.wallboard.wrapup_s,
        refresh_s=rt.config.wallboard.refresh_s,
        timezone=rt.config.routing.timezone,
        pool=rt.pool,
        queues=[rt.config.routing.default_queue],
    )
    hub.use_board(board)
    board.on_stats(hub.publish_queue)
    board.use_names(hub.customer_name)
    return board


def _participants(rt: Runtime) -> Component:
    roster: AgentRoster = rt.get("roster")
    return ParticipantRecorder(rt.pool, roster.agent_id_of)


def _ami(rt: Runtime) -> Component | None:
    """The AMI link feeding the tracker, whose call events go to the pop hub (inline, in PBX
    order), the participants and the call-record writer; Cdrs go to the writer too (kept
    for `sync run`)."""
    if not rt.config.ami.enabled:
        return None
    link = AmiLink(rt.config.ami, _tracker(rt))
    hub: PopHub = rt.get("pops")
    participants: ParticipantRecorder = rt.get("participants")
    writer = _records(rt).writer
    link.observe(hub.dispatch)
    board: WallBoard = rt.get("wallboard")
    board.use_control(AmiQueues(link, rt.config.device_regex))
    link.observe(board.dispatch)
    # Who talked and the records are lossless: a full subscriber pauses the AMI read.
    link.subscribe(participants.on_event, lossless=True)
    link.subscribe(writer.on_events, lossless=True, batch=True)
    link.subscribe_events(writer.on_events, (CdrRecord,), lossless=True, batch=True)
    return link


def _reconcile(rt: Runtime) -> Component | None:
    """Rebuilds calls that ended while the bridge was down from the PBX's CDRs."""
    return build_reconciler(rt.config, rt.pool, _records(rt).alerter)


def _http(rt: Runtime) -> Component:
    hub: PopHub = rt.get("pops")
    participants = rt.components.get("participants")
    settle = participants.drain if isinstance(participants, ParticipantRecorder) else None
    board = rt.components.get("wallboard")
    cfg = rt.config
    agent_deps = AgentDeps(
        rt.pool,
        lambda: hub.port,
        settle=settle,
        region=cfg.pbx.default_region,
        timezone=cfg.routing.timezone,
        tag_colors=cfg.pops.tag_colors,
        customer_url=cfg.crm.customer_url,
        sla_s=cfg.wallboard.sla_s,
        connector=_records(rt).connector,
        agents_edit=cfg.permissions.agents_edit,
    )
    admin_deps = AdminDeps(
        pool=rt.pool, config=cfg, board=board if isinstance(board, WallBoard) else None
    )
    link = rt.components.get("ami")
    dial_deps = DialDeps(
        rt.pool,
        Dialer(rt.pool, cfg, link.action) if isinstance(link, AmiLink) else None,
        callbacks_days=cfg.dial.callbacks_days,
        region=cfg.pbx.default_region,
        queues_of=board.queues_of if isinstance(board, WallBoard) else lambda device: None,
    )
    setups = [
        lambda app: setup_agent_routes(app, agent_deps),
        lambda app: setup_dial_routes(app, dial_deps),
        lambda app: setup_admin_routes(app, admin_deps),
        lambda app: setup_webhook_routes(
            app, WebhookDeps(pool=rt.pool, config=rt.config, on_change_lag=change_lag(rt).observe)
        ),
    ]
    app = make_web_app(health=rt.health, setups=setups)
    http = rt.config.http
    return HttpServer(
        app,
        http.host,
        http.port,
        max_connections=http.max_connections,
        header_timeout_s=http.header_timeout_s,
    )


def _agi(rt: Runtime) -> Component:
    return build_agi_server(rt.config, rt.get("route"))


COMPONENTS: list[tuple[str, Factory]] = [
    ("database", _database),
    ("listener", _listener),
    ("directory", _directory),
    ("rules", _rules),
    ("roster", _roster),
    # Call records before anything that produces calls, so they stop last and keep in-flight
    # end events: alerts and the connector first, then the writer, then its delivery worker.
    ("alerts", lambda rt: _records(rt).alerter),
    ("crm", lambda rt: _records(rt).connector),
    ("records", lambda rt: _records(rt).writer),
    ("outbox", lambda rt: _records(rt).outbox),
    ("merge_notice", lambda rt: rt.built.pop("merge_notice")),
    ("reconcile", _reconcile),
    ("route", _route),
    ("card_views", lambda rt: CardViewAudit(rt.pool)),
    ("pops", _pops),
    ("wallboard", _wallboard),
    ("participants", _participants),
    ("ami", _ami),
    ("agi", _agi),
    ("ari", lambda rt: build_ari_app(rt.config, rt.get("route"))),
    ("http", _http),
    ("monitor", build_monitor),  # last: it watches the parts above (alerts, with resolutions)
]


async def start_components(
    stack: AsyncExitStack, rt: Runtime, registry: list[tuple[str, Factory]] | None = None
) -> Runtime:
    """Build and start each registered component; its stop goes on `stack`."""
    for name, factory in COMPONENTS if registry is None else registry:
        component = factory(rt)
        if component is None:
            log.info("%s: disabled", name)
            continue
        await component.start()
        stack.push_async_callback(_stopper(name, component))
        rt.components[name] = component
        log.info("%s: started", name)
    return rt


def _stopper(name: str, component: Component) -> Callable[[], Any]:
    async def stop() -> None:
        try:
            await component.stop()
        except Exception:
            log.exception("%s: failed to stop cleanly", name)
        else:
            log.info("%s: stopped", name)

    return stop


def open_files_needed(config: Config) -> int:
    """File descriptors the connection caps can use at once, plus the database pool and a
    margin for the PBX links, the CRM, the spool and the listening sockets themselves."""
    return (
        config.agi.max_sessions
        + config.agi.max_pending
        + config.http.max_connections
        + config.pops.max_connections
        + config.database.pool_size
        + 256
    )


async def run_bridge(
    config: Config,
    *,
    stop: asyncio.Event | None = None,
    started: Callable[[Runtime], None] | None = None,
) -> None:
    """Run the bridge until `stop` is set (forever without one), then stop in reverse.

    `started(runtime)` is called once everything listens (tests and the demo use it).
    """
    stop = stop or asyncio.Event()
    raise_open_files_limit(open_files_needed(config))
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(database_url(config))
        pool = await create_pool(url, min_size=1, max_size=max(2, config.database.pool_size))
        stack.push_async_callback(pool.close)
        rt = await start_components(stack, Runtime(config, pool))
        if started is not None:
            started(rt)
        log.info("crm-bridge running: %s", ", ".join(rt.components))
        await stop.wait()
        log.info("crm-bridge stopping")
