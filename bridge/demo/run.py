"""`crm-bridge demo`: everything on one machine, nothing configured.

Order of start (and, reversed, of stop): the database (embedded PostgreSQL when no URL is
set), migrations, the demo CRM, the simulated PBX's AMI server on an ephemeral loopback
port, the bridge itself (bridge.runtime.run_bridge, in this process, its AMI link pointed at the
simulator), then the simulator starts placing calls into the bridge's FastAGI port. Ctrl-C
(SIGINT) or SIGTERM sets `stop`: calls stop, the bridge stops, the AMI server closes and the
embedded PostgreSQL is shut down, so no process is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from bridge.config import Config
from bridge.db.embedded import database_url
from bridge.db.migrate import migrate
from bridge.db.pool import create_pool
from bridge.demo.data import AGENTS, QUEUES, callers, customers
from bridge.demo.seed import seed
from bridge.errors import BridgeError
from bridge.plugin import Context
from bridge.sim import AmiServer, AmiUser, SimAgent, SimConfig, SimPbx, SimQueue

log = logging.getLogger(__name__)

DEMO_AMI_USER = "crm-bridge-demo"


class RunBridge(Protocol):
    """`bridge.runtime.run_bridge`'s shape: runs until `stop`, calls `started` once listening."""

    def __call__(
        self, config: Config, *, stop: asyncio.Event, started: Callable[[Context], None]
    ) -> Awaitable[None]: ...


@dataclass(frozen=True, slots=True)
class DemoOptions:
    calls_per_minute: float = 6.0
    duration_s: float | None = None  # None: until Ctrl-C
    ami_port: int = 0  # the simulator's AMI port; 0 = any free loopback port
    technology: str = "PJSIP"
    seed: int | None = None
    ready_timeout_s: float = 60.0


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in {"", "0.0.0.0", "::"} else host  # noqa: S104


def agent_page_url(config: Config) -> str:
    return f"http://{_display_host(config.http.host)}:{config.http.port}/agent"


def wallboard_url(config: Config) -> str:
    return f"http://{_display_host(config.http.host)}:{config.http.port}/wallboard"


# Badge colours of the demo's tags on the agent's desk, unless the configuration sets its own.
DEMO_TAG_COLORS = {
    "vip": "#b8860b",
    "complaint-risk": "#c0392b",
    "churn-risk": "#d35400",
    "wholesale": "#2a6f97",
    "newsletter": "#6c757d",
}


def simulator_config(config: Config, options: DemoOptions, ami_secret: str) -> SimConfig:
    names = {a.device: a.name for a in AGENTS}
    devices = sorted({d for _, _, members in QUEUES for d in members})
    return SimConfig(
        technology="Local" if options.technology == "Local" else "PJSIP",
        agents=tuple(SimAgent(d, names.get(d, d)) for d in devices),
        queues=tuple(SimQueue(n, s, m) for n, s, m in QUEUES),  # type: ignore[arg-type]
        fallback_queue=config.routing.default_queue,
        calls_per_minute=options.calls_per_minute,
        ring_s=(2.0, 6.0),
        talk_s=(8.0, 30.0),
        abandon_rate=0.1,
        transfer_rate=0.1,
        callers=callers(customers()),
        seed=options.seed,
        agi_host=_display_host(config.agi.host),
        agi_port=config.agi.port,
        ami_users=(
            AmiUser(
                DEMO_AMI_USER, ami_secret, frozenset({"call", "agent", "cdr", "dialplan", "system"})
            ),
        ),
    )


async def _wait_started(ready: asyncio.Event, bridge: asyncio.Task[Any], timeout_s: float) -> None:
    """Until run_bridge reports everything listening (or fails)."""
    waiter = asyncio.ensure_future(ready.wait())
    try:
        await asyncio.wait({waiter, bridge}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if bridge.done():
        bridge.result()  # raises what stopped it
        raise BridgeError("the bridge stopped during start-up")
    if not ready.is_set():
        raise BridgeError(f"the bridge did not start within {timeout_s:g} s")


async def _calls_ended(runtime: Context, *, timeout_s: float) -> None:
    """Give the bridge a moment to end (and record) the calls the simulator just hung up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        try:
            detail = runtime.components["ami"].health().detail
            if int(detail.get("active_calls", 0)) == 0:
                return
        except (AttributeError, KeyError, TypeError, ValueError):
            return  # a bridge without that detail: nothing to wait for
        await asyncio.sleep(0.1)


def _load_run_bridge() -> RunBridge:
    from bridge.runtime import run_bridge

    return run_bridge


async def run_demo(
    config: Config,
    options: DemoOptions,
    *,
    stop: asyncio.Event,
    out: TextIO | None = None,
    run_bridge: RunBridge | None = None,
) -> None:
    out = out or sys.stdout
    run_bridge = run_bridge or _load_run_bridge()

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(database_url(config))
        say(
            "database: embedded PostgreSQL in ./.crm-bridge/pgdata"
            if not config.database.url
            else "database: the configured one"
        )
        await migrate(url)
        pool = await create_pool(url, min_size=1, max_size=2)
        try:
            tokens = await seed(pool)
        finally:
            await pool.close()

        ami_secret = secrets.token_urlsafe(18)
        pbx = SimPbx(simulator_config(config, options, ami_secret))
        ami = AmiServer(pbx, host="127.0.0.1", port=options.ami_port)
        await ami.start()
        stack.push_async_callback(ami.stop)

        bridge_config = dataclasses.replace(
            config,
            database=dataclasses.replace(config.database, url=url),
            ami=dataclasses.replace(
                config.ami,
                enabled=True,
                host="127.0.0.1",
                port=ami.port,
                username=DEMO_AMI_USER,
                secret=ami_secret,
            ),
            ari=dataclasses.replace(config.ari, enabled=False),
            pops=dataclasses.replace(
                config.pops, tag_colors=config.pops.tag_colors or dict(DEMO_TAG_COLORS)
            ),
        )
        bridge_stop = asyncio.Event()
        ready = asyncio.Event()
        runtime: list[Context] = []

        def on_started(ctx: Context) -> None:
            runtime.append(ctx)
            ready.set()

        bridge = asyncio.ensure_future(
            run_bridge(bridge_config, stop=bridge_stop, started=on_started)
        )

        async def stop_bridge() -> None:
            bridge_stop.set()
            try:
                await asyncio.wait_for(asyncio.shield(bridge), 30)
            except TimeoutError:
                bridge.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await bridge
            except Exception:
                log.exception("the bridge failed while stopping")

        stack.push_async_callback(stop_bridge)
        await _wait_started(ready, bridge, options.ready_timeout_s)

        say(f"open the agent page: {agent_page_url(config)}")
        say(f"screen-pops (websocket): ws://{_display_host(config.pops.host)}:{config.pops.port}/")
        for agent_id, token in tokens:
            say(f"agent {agent_id} {token}")
        leads = ", ".join(a.id for a in AGENTS if a.role in ("supervisor", "admin"))
        say(f"open the wallboard: {wallboard_url(config)} (sign in with the token of {leads})")
        say(
            f"simulated PBX: AMI on 127.0.0.1:{ami.port}, calls into FastAGI "
            f"{_display_host(config.agi.host)}:{config.agi.port}, "
            f"{options.calls_per_minute:g} calls per minute; Ctrl-C stops everything"
        )

        calls_stop = asyncio.Event()
        calls = asyncio.ensure_future(pbx.run_random(calls_stop))

        async def stop_calls() -> None:
            calls_stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await calls
            await pbx.stop()  # calls in progress hang up on the wire
            if runtime:
                await _calls_ended(runtime[0], timeout_s=6.0)

        stack.push_async_callback(stop_calls)

        waits = [asyncio.ensure_future(stop.wait()), bridge]
        if options.duration_s is not None:
            waits.append(asyncio.ensure_future(asyncio.sleep(options.duration_s)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                if waiter is not bridge:
                    waiter.cancel()
        if bridge.done() and not bridge.cancelled() and bridge.exception() is not None:
            raise bridge.exception()  # type: ignore[misc]
        say("stopping…")
