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
from typing import Any

import asyncpg

from bridge.agi import build_agi_server
from bridge.ari import build_ari_app
from bridge.component import Component, Health
from bridge.config import Config
from bridge.crm.directory import PostgresDirectory
from bridge.crm.listener import PgListener
from bridge.db.embedded import database_url
from bridge.db.pool import create_pool
from bridge.routing.service import RouteService
from bridge.routing.store import RuleStore

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What factories build on; `components` holds the started parts by name, in order."""

    config: Config
    pool: asyncpg.Pool[Any]
    components: dict[str, Component] = field(default_factory=dict)
    built: dict[str, Any] = field(default_factory=dict)  # made by one factory for a later one

    def health(self) -> dict[str, Health]:
        return {name: component.health() for name, component in self.components.items()}

    def get(self, name: str) -> Any:
        return self.components[name]


Factory = Callable[[Runtime], Component | None]


def _listener(rt: Runtime) -> Component:
    # One LISTEN connection shared by the directory and the rule store. Both subscribe in
    # their constructors, which must run before the listener starts: build them here.
    listener = PgListener(rt.pool, keepalive_s=10.0, name="crm-listener")
    rt.built["directory"] = PostgresDirectory(rt.pool, listener=listener)
    rt.built["rules"] = RuleStore(rt.pool, listener=listener)
    return listener


def _directory(rt: Runtime) -> Component:
    return rt.built.pop("directory")


def _rules(rt: Runtime) -> Component:
    return rt.built.pop("rules")


def _route(rt: Runtime) -> Component:
    return RouteService(rt.get("directory"), rt.get("rules"), rt.config)


def _agi(rt: Runtime) -> Component:
    return build_agi_server(rt.config, rt.get("route"))


COMPONENTS: list[tuple[str, Factory]] = [
    ("listener", _listener),
    ("directory", _directory),
    ("rules", _rules),
    ("route", _route),
    ("agi", _agi),
    ("ari", lambda rt: build_ari_app(rt.config, rt.get("route"))),
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
