"""`crm-bridge run`: run every enabled component until SIGTERM/SIGINT, then stop cleanly."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from bridge.cli import collector, event_loop
from bridge.cli.common import config_from
from bridge.cli.event_loop import choose_loop
from bridge.cluster.identity import InstanceLogFilter, this_instance
from bridge.config import Config

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(instance)s %(name)s: %(message)s"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("run", help="run the bridge until SIGTERM or SIGINT")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = config_from(args, runtime=True)
    logging.basicConfig(level=config.log.level.upper(), format=LOG_FORMAT, force=True)
    instance = InstanceLogFilter(this_instance(config.cluster.instance_id).id)
    for handler in logging.getLogger().handlers:  # several bridges' logs stay apart
        handler.addFilter(instance)
    factory, loop_name = choose_loop()
    log.info("event loop: %s", loop_name)
    collector.tune()
    event_loop.run(serve(config), factory)
    return 0


async def serve(config: Config) -> None:
    from bridge.runtime import run_bridge

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await run_bridge(config, stop=stop, started=lambda ctx: collector.freeze_startup())
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
