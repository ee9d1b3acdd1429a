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
from bridge.audit import CardViewAudit
from bridge.cluster.wiring import build_lease, leader_only, setup_cluster_web
from bridge.component import Component, Health
from bridge.config import Config
from bridge.connectors.prebuilt import PrebuiltConnector
from bridge.crm.directory import PostgresDirectory
from bridge.crm.listener import PgListener
from bridge.crm.merge_notice import MergeNotifier
from bridge.crm.phones import to_e164
from bridge.crm.roster import AgentRoster
from bridge.db.embedded import database_url
from bridge.db.health import DatabaseHealth
from bridge.db.pool import create_pool
from bridge.dial.routes import DialDeps, setup_dial_routes
from bridge.dial.service import Dialer
from bridge.models import CustomerCard
from bridge.netguard import raise_open_files_limit
from bridge.pbx.build import PbxParts, build_pbx, build_pbx_ari, wire_pbx
from bridge.pbx.group import PbxGroup
from bridge.pbx.live import PbxCalls, PbxQueues
from bridge.pops.hub import CardForCaller, PopHub
from bridge.pops.sources import PostgresCards, build_pop_hub
from bridge.records.participants import ParticipantRecorder
from bridge.records.wiring import RecordsParts, build_records
from bridge.routing.service import RouteService
from bridge.routing.store import RuleStore
from bridge.tracker import CallTracker
from bridge.wallboard.board import WallBoard
from bridge.web import make_web_app
from bridge.web.admin import AdminDeps, setup_admin_routes
from bridge.web.agent import AgentDeps, setup_agent_routes
from bridge.web.server import HttpServer
from bridge.web.webhook import WebhookDeps, setup_webhook_routes

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


# --- the PBXs (bridge/pbx): one set of parts per `[[pbx]]` entry, or the legacy one -------
# Everything PBX-specific is built by `build_pbx` and wired by `wire_pbx`; below, one
# PBX's part is used as it is (a legacy install's components are what they always were) and
# several are grouped under the CONTRACT's names (`ami`, `ari`, `reconcile`).


def _pbxs(rt: Runtime) -> list[PbxParts]:
    """Each PBX's tracker, link, queue control and reconciler (built once, started later)."""
    parts: list[PbxParts] | None = rt.built.get("pbxs")
    if parts is None:
        found = rt.components.get("roster") or rt.built.get("roster")
        roster = found if isinstance(found, AgentRoster) else None
        # Agents are devices of the roster: Local hops and trunks are never listed as agents.
        is_agent = None if roster is None else (lambda ext: roster.agent_id_of(ext) is not None)
        alerts = _records(rt).alerter
        parts = [
            build_pbx(rt.config, site, pool=rt.pool, is_agent=is_agent, alerts=alerts)
            for site in rt.config.pbxs
        ]
        rt.built["pbxs"] = parts
    return parts


def _tracker(rt: Runtime) -> CallTracker | PbxCalls:
    """The one live-call truth (every PBX's): fed by the AMI links, read by the pop hub."""
    parts = _pbxs(rt)
    return parts[0].tracker if len(parts) == 1 else PbxCalls([p.tracker for p in parts])


def _grouped(name: str, parts: list[tuple[str, Component | None]]) -> Component | None:
    """One PBX's component as it is; several PBXs' as one group (None: none enabled)."""
    present = [(pbx, c) for pbx, c in parts if c is not None]
    if len(parts) == 1:
        return present[0][1] if present else None
    return PbxGroup(name, present) if present else None


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
    # Card hand-off (issue 14): routing tells the pops each call's customer and reason, and
    # the cards are cached by customer under the directory's change notices. Only when
    # routing looks callers up in the built-in CRM: its customer ids are the cards' ids.
    cards = PostgresCards(rt.pool, rt.get("directory"), rt.config.pbx.default_region)
    if rt.config.crm.connector == "builtin":
        route: RouteService = rt.get("route")
        route.on_routed(cards.routed)
    return build_pop_hub(
        rt.pool,
        rt.config,
        rt.get("directory"),
        roster,
        live=_tracker(rt),
        card_seen=audit.note,
        card_for_caller=_external_cards(rt),
        cards=cards,
    )


def _external_cards(rt: Runtime) -> CardForCaller | None:
    """A prebuilt connector's cards (its deals, cases) for the pops; None: the built-in CRM's."""
    connector = _records(rt).connector
    if not isinstance(connector, PrebuiltConnector):
        return None
    region = rt.config.pbx.default_region

    async def card_for_caller(caller: str) -> CustomerCard | None:
        e164 = to_e164(caller, region)
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
    """Each PBX's AMI link feeding its tracker, whose call events go to the pop hub (inline,
    in PBX order), the wallboard, the participants and the call-record writer."""
    hub: PopHub = rt.get("pops")
    board: WallBoard = rt.get("wallboard")
    participants: ParticipantRecorder = rt.get("participants")
    writer = _records(rt).writer
    parts = _pbxs(rt)
    controls = [(p.site.prefix, p.queues) for p in parts if p.queues is not None]
    if len(controls) == 1:
        board.use_control(controls[0][1])
    elif controls:
        board.use_control(PbxQueues(controls))
    for part in parts:
        wire_pbx(
            part,
            pops=hub.dispatch,
            board=board.dispatch,
            participants=participants.on_event,
            records=writer.on_events,
        )
    return _grouped("ami", [(p.site.name, p.link) for p in parts])


def _ari(rt: Runtime) -> Component | None:
    router = rt.get("route")
    return _grouped(
        "ari", [(site.name, build_pbx_ari(rt.config, site, router)) for site in rt.config.pbxs]
    )


def _reconcile(rt: Runtime) -> Component | None:
    """Rebuilds calls that ended while the bridge was down from each PBX's CDRs."""
    return _grouped("reconcile", [(p.site.name, p.reconciler) for p in _pbxs(rt)])


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
    dial_deps = DialDeps(
        rt.pool,
        _dialer(rt),
        callbacks_days=cfg.dial.callbacks_days,
        region=cfg.pbx.default_region,
        queues_of=board.queues_of if isinstance(board, WallBoard) else lambda device: None,
    )
    setups = [
        lambda app: setup_cluster_web(app, rt),
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


def _dialer(rt: Runtime) -> Dialer | None:
    """Click-to-call through the agent's own PBX's AMI link (None: no link at all)."""
    links = [(p.site, p.link) for p in _pbxs(rt) if p.link is not None]
    if not links:
        return None
    first = links[0][1].link.action
    if not rt.config.pbx_sites:
        return Dialer(rt.pool, rt.config, first)
    sites = {site.name: (site, link.link.action) for site, link in links}
    return Dialer(rt.pool, rt.config, first, sites=sites)


def _agi(rt: Runtime) -> Component:
    return build_agi_server(rt.config, rt.get("route"))


COMPONENTS: list[tuple[str, Factory]] = [
    ("database", _database),
    # Several instances may share the database: the once-only jobs follow this lease.
    ("cluster", build_lease),
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
    ("merge_notice", lambda rt: leader_only(rt, rt.built.pop("merge_notice"))),
    ("reconcile", lambda rt: leader_only(rt, _reconcile(rt))),
    ("route", _route),
    ("card_views", lambda rt: CardViewAudit(rt.pool)),
    ("pops", _pops),
    ("wallboard", _wallboard),
    ("participants", _participants),
    ("ami", _ami),
    ("agi", _agi),
    ("ari", _ari),
    ("http", _http),
    # last: it watches the parts above (alerts, with resolutions)
    ("monitor", lambda rt: leader_only(rt, build_monitor(rt))),
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
        rt = await start_components(stack, Runtime(config, pool, built={"database_url": url}))
        if started is not None:
            started(rt)
        log.info("crm-bridge running: %s", ", ".join(rt.components))
        await stop.wait()
        log.info("crm-bridge stopping")
