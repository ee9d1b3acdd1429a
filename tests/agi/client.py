"""A test FastAGI client that plays Asterisk: sends an environment, answers commands."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


def parse_args(line: str) -> list[str]:
    """Asterisk's res_agi.c parse_args, re-stated: how the PBX splits a command line."""
    args: list[str] = []
    cur: list[str] | None = None
    quoted = escaped = False
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and cur is None:
                cur = []
                args.append("")
            continue
        if ch in " \t" and not quoted and not escaped:
            if cur is not None:
                args[-1] = "".join(cur)
            cur = None
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if cur is None:
            cur = []
            args.append("")
        cur.append(ch)
        escaped = False
    if cur is not None:
        args[-1] = "".join(cur)
    return args


@dataclass
class AgiResult:
    variables: dict[str, str] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    closed_by_server: bool = False


async def play_asterisk(
    port: int,
    header: bytes,
    *,
    linkedid: str | None = None,
    refuse: str | None = None,
    timeout_s: float = 10.0,
) -> AgiResult:
    """Send `header`, answer each command as Asterisk would until the server closes.

    `GET VARIABLE CHANNEL(linkedid)` → `200 result=1 (<linkedid>)` (result=0 when None);
    `SET VARIABLE` → `200 result=1`, except the variable named `refuse` → 510.
    """
    result = AgiResult()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(timeout_s):
            writer.write(header)
            await writer.drain()
            while True:
                raw = await reader.readline()
                if not raw:
                    result.closed_by_server = True
                    return result
                line = raw.decode("utf-8").rstrip("\n")
                result.commands.append(line)
                args = parse_args(line)
                if args[:2] == ["GET", "VARIABLE"]:
                    found = linkedid if args[2:] == ["CHANNEL(linkedid)"] else None
                    reply = f"200 result=1 ({found})\n" if found else "200 result=0\n"
                elif args[:2] == ["SET", "VARIABLE"] and len(args) == 4:
                    if args[2] == refuse:
                        reply = "510 Invalid or unknown command\n"
                    else:
                        result.variables[args[2]] = args[3]
                        reply = "200 result=1\n"
                else:
                    reply = "520 Invalid command syntax.\n"
                writer.write(reply.encode())
                await writer.drain()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def header(**values: str) -> bytes:
    """An environment like Asterisk's for `agi://…/route`, with `values` overriding keys."""
    env = {
        "network": "yes",
        "network_script": "route",
        "request": "agi://127.0.0.1:4573/route",
        "channel": "PJSIP/trunk-00000001",
        "language": "en",
        "type": "PJSIP",
        "uniqueid": "1795464246.1",
        "version": "22.11.0",
        "callerid": "+15551230001",
        "calleridname": "Alice VIP",
        "dnid": "unknown",
        "context": "inbound",
        "extension": "18005550100",
        "priority": "3",
    }
    env.update(values)
    return "".join(f"agi_{k}: {v}\n" for k, v in env.items()).encode("utf-8") + b"\n"
