"""`crm-bridge demo`: embedded database, demo CRM, simulated PBX placing calls, agent page.

Prints the agent page URL and one `agent <ID> <TOKEN>` line per demo agent. Tokens are
fresh at every start (the agents are kept; their tokens are rotated, so old ones stop
working). Ctrl-C stops everything, including the embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from bridge.cli.common import config_from
from bridge.errors import UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        help="run the bridge against a simulated PBX with demo data (no setup needed)",
        description=__doc__,
    )
    demo.add_argument(
        "--calls-per-minute",
        type=float,
        default=6.0,
        metavar="N",
        help="average rate of simulated calls (default 6)",
    )
    demo.add_argument(
        "--duration", type=float, default=None, metavar="SECONDS", help="stop after this long"
    )
    demo.add_argument(
        "--ami-port",
        type=int,
        default=0,
        metavar="PORT",
        help="loopback port of the simulated PBX's AMI (default: any free port)",
    )
    demo.add_argument(
        "--technology",
        choices=("PJSIP", "Local"),
        default="PJSIP",
        help="channel names of the simulated PBX (default PJSIP)",
    )
    demo.add_argument("--seed", type=int, default=None, help="random seed for the simulator")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from bridge.demo.run import DemoOptions, run_demo

    if args.calls_per_minute <= 0 or args.calls_per_minute > 6000:
        raise UsageError("--calls-per-minute must be between 0 and 6000")
    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be positive")
    if not 0 <= args.ami_port <= 65535:
        raise UsageError("--ami-port must be a TCP port")
    config = config_from(args, runtime=False)
    logging.getLogger().setLevel(config.log.level.upper())
    options = DemoOptions(
        calls_per_minute=args.calls_per_minute,
        duration_s=args.duration,
        ami_port=args.ami_port,
        technology=args.technology,
        seed=args.seed,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await run_demo(config, options, stop=stop)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    asyncio.run(main())
    return 0
