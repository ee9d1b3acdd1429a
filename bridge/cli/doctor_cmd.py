"""`crm-bridge doctor` and `crm-bridge alerts test`: is this installation able to do its job,
and do the technicians' alert channels reach them?"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bridge.alerts import Alerter
from bridge.cli.common import config_from
from bridge.config import Config
from bridge.doctor import Check, format_check, run_checks
from bridge.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("doctor", help="check the installation, one line per check")
    parser.set_defaults(handler=doctor)
    alerts = sub.add_parser("alerts", help="alert channels")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", metavar="ACTION")
    alerts_sub.required = True
    test = alerts_sub.add_parser("test", help="send a test alert through every channel")
    test.set_defaults(handler=alerts_test)


def doctor(args: argparse.Namespace) -> int:
    try:
        config = config_from(args, runtime=True)
    except ConfigError as exc:
        print(format_check(Check("config", "fail", str(exc))))
        return 1
    checks = asyncio.run(run_checks(config))
    for check in checks:
        print(format_check(check))
    return 1 if any(c.status == "fail" for c in checks) else 0


def alerts_test(args: argparse.Namespace) -> int:
    config = config_from(args, runtime=True)
    results = asyncio.run(send_test(config))
    if not results:
        print(
            "crm-bridge: no alert channel configured ([alerts] webhook_url, smtp_*, sms_*)",
            file=sys.stderr,
        )
        return 1
    for channel, error in results.items():
        print(
            format_check(
                Check(
                    f"alerts {channel}", "fail" if error else "ok", error or "test alert accepted"
                )
            )
        )
    return 1 if any(results.values()) else 0


async def send_test(config: Config) -> dict[str, str | None]:
    alerter = Alerter(config.alerts)
    await alerter.start()
    try:
        return await alerter.send_test()
    finally:
        await alerter.stop()
