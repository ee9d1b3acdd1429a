"""Shared test helpers: trace replay into call events, route decisions from agi.log, seeds."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bridge.ami_replay import replay
from bridge.config import DEFAULT_DEVICE_PATTERN
from bridge.models import CallEnded, CallEvent
from bridge.tracker import CallTracker
from tests.conftest import TRACES

AMI_SCENARIOS = [
    s.name
    for s in sorted(TRACES.iterdir())
    if (s / "ami.log").exists() and (s / "scenario.json").exists()
]

# The CRM the recording FastAGI server used (asterisk-traces/README.md).
CUSTOMERS = {
    "+15551230001": ("c-alice", "Alice Chen"),
    "+15551230002": ("c-bob", "Bob Li"),
    "+8613800138000": ("c-zhang", "张伟"),
}
AGENTS = {"1001": "ann", "1002": "ben", "2001": "sue", "2002": "sam"}


def tracker_events(scenario: str) -> list[CallEvent]:
    data = (TRACES / scenario / "ami.log").read_bytes()
    is_agent = frozenset(AGENTS).__contains__
    return replay(data, CallTracker(re.compile(DEFAULT_DEVICE_PATTERN), is_agent=is_agent))


def ended_events(scenario: str) -> list[CallEnded]:
    return [e for e in tracker_events(scenario) if isinstance(e, CallEnded)]


def agi_sessions(path: Path) -> list[dict[str, str]]:
    """Each FastAGI session's agi_* environment plus the variables the server SET."""
    sessions: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("agi_network:"):
            current = {}
            sessions.append(current)
        if current is None:
            continue
        if line.startswith("agi_") and ": " in line:
            key, _, value = line.partition(": ")
            current[key] = value
        m = re.match(r'>> SET VARIABLE (\w+) "(.*)"$', line)
        if m:
            current[m.group(1)] = m.group(2)
    return sessions


async def seed_crm(conn: Any) -> None:
    for phone, (cid, name) in CUSTOMERS.items():
        await conn.execute(
            "INSERT INTO customers (id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING", cid, name
        )
        await conn.execute(
            "INSERT INTO customer_phones (e164, customer_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING",
            phone,
            cid,
        )
    for device, agent in AGENTS.items():
        await conn.execute(
            "INSERT INTO agents (id, name, device, token_hash) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING",
            agent,
            agent.title(),
            device,
            f"hash-{agent}",
        )


async def seed_decisions(conn: Any, scenario: str, *, linkedid: bool = False) -> None:
    """The route_decisions rows the bridge would have written while routing the trace
    (`linkedid`: with the channel's Linkedid filled in, as the AGI server can ask for it)."""
    agi = TRACES / scenario / "agi.log"
    call_of = {u: e.call_id for e in ended_events(scenario) for u in e.summary.uniqueids}
    if agi.exists():
        for env in agi_sessions(agi):
            caller = env.get("agi_callerid", "")
            customer = CUSTOMERS.get(caller)
            await conn.execute(
                "INSERT INTO route_decisions (uniqueid, channel, caller, did, customer_id, queue,"
                " rule, recording, linkedid) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                env["agi_uniqueid"],
                env["agi_channel"],
                caller,
                env["agi_extension"],
                customer[0] if customer else None,
                env["BRIDGE_QUEUE"],
                "vip" if env["BRIDGE_QUEUE"] == "senior" else "default",
                f"{env['agi_uniqueid']}.wav",
                call_of.get(env["agi_uniqueid"], "") if linkedid else "",
            )
        return
    facts = json.loads((TRACES / scenario / "scenario.json").read_text())
    if facts.get("routed") is False:
        return  # the dialplan routed the call itself (no AGI, no decision)
    # No agi.log (least-privilege, ARI): a decision keyed by the call's linkedid.
    for ended in ended_events(scenario):
        customer = CUSTOMERS.get(ended.summary.caller)
        await conn.execute(
            "INSERT INTO route_decisions (uniqueid, linkedid, caller, customer_id, queue, rule,"
            " recording) VALUES ($1, $1, $2, $3, $4, 'vip', $5)",
            ended.call_id,
            ended.summary.caller,
            customer[0] if customer else None,
            ended.summary.queue or "support",
            f"{ended.call_id}.wav",
        )
