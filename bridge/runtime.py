"""The running bridge: the plugins in start order, started in order and stopped in reverse
(an `AsyncExitStack`).

Every plugin's `prepare` runs first, in order (the parts sharing the one PgListener subscribe
there, before it starts); then each plugin's component is built and started. Call records
start before anything that produces calls, so they stop last and keep in-flight end events:
alerts and the connector first, then the writer, then its delivery worker. The monitor is
last to start: it watches the parts above. Adding a feature is one line here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

from bridge.agi.plugin import AGI
from bridge.alerts.plugin import ALERTS, EVENT_LOOP, MONITOR
from bridge.ami.plugin import AMI
from bridge.ari.plugin import ARI
from bridge.cluster.plugin import CLUSTER
from bridge.component import Component
from bridge.config import Config
from bridge.connectors.plugin import CONNECTOR, CRM_FEED, MERGE_NOTICE
from bridge.crm.off_pbx import log_agents_off_pbx
from bridge.crm.plugin import CRM_API, DIRECTORY, LISTENER, ROSTER, WEBHOOK
from bridge.db.embedded import database_url
from bridge.db.plugin import DATABASE
from bridge.db.pool import create_pool
from bridge.dial.plugin import DIAL
from bridge.netguard import raise_open_files_limit
from bridge.plugin import Context, Plugin
from bridge.pops.plugin import CARD_VIEWS, POPS
from bridge.records.plugin import OUTBOX, PARTICIPANTS, RECORDS
from bridge.routing.plugin import ROUTE, RULES
from bridge.sync.plugin import RECONCILE
from bridge.wallboard.plugin import WALLBOARD
from bridge.web.plugin import HTTP

__all__ = ["PLUGINS", "open_files_needed", "run_bridge", "start_plugins"]

log = logging.getLogger(__name__)

PLUGINS: tuple[Plugin, ...] = (
    EVENT_LOOP,
    DATABASE,
    CLUSTER,  # several instances may share the database: the once-only jobs follow it
    LISTENER,
    DIRECTORY,
    RULES,
    ROSTER,
    ALERTS,
    CONNECTOR,
    CRM_FEED,
    RECORDS,
    OUTBOX,
    MERGE_NOTICE,
    RECONCILE,
    ROUTE,
    CARD_VIEWS,
    POPS,
    WALLBOARD,
    PARTICIPANTS,
    AMI,
    AGI,
    ARI,
    DIAL,
    CRM_API,
    WEBHOOK,
    HTTP,
    MONITOR,
)


async def start_plugins(stack: AsyncExitStack, ctx: Context) -> Context:
    """Prepare every plugin of `ctx`, then build and start each component; its stop goes
    on `stack`."""
    for plugin in ctx.plugins:
        if plugin.prepare is not None:
            plugin.prepare(ctx)
    for plugin in ctx.plugins:
        if plugin.build is None:
            continue  # routes only
        component = plugin.build(ctx)
        if component is None:
            log.info("%s: disabled", plugin.name)
            continue
        await component.start()
        stack.push_async_callback(_stopper(plugin.name, component))
        ctx.components[plugin.name] = component
        log.info("%s: started", plugin.name)
    return ctx


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
    started: Callable[[Context], None] | None = None,
    plugins: Sequence[Plugin] = PLUGINS,
) -> None:
    """Run the bridge until `stop` is set (forever without one), then stop in reverse.

    `started(context)` is called once everything listens (tests and the demo use it).
    """
    stop = stop or asyncio.Event()
    raise_open_files_limit(open_files_needed(config))
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(database_url(config))
        pool = await create_pool(url, min_size=1, max_size=max(2, config.database.pool_size))
        stack.push_async_callback(pool.close)
        ctx = await start_plugins(stack, Context(config, pool, plugins, database_url=url))
        await log_agents_off_pbx(pool, config)  # with [[pbx]]: agents matching no device
        if started is not None:
            started(ctx)
        log.info("crm-bridge running: %s", ", ".join(ctx.components))
        await stop.wait()
        log.info("crm-bridge stopping")
