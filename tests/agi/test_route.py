"""The /route handler end to end: recorded Asterisk sessions against the real CRM tables."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bridge.errors import CrmUnavailable
from bridge.models import Customer
from tests.agi.client import header, play_asterisk
from tests.agi.conftest import RouteStack, agi_config, start_stack, stop_stack
from tests.agi.traces import agi_sessions, linkedids
from tests.crm.fixture_crm import load_trace_crm

SCENARIOS_WITH_AGI = [
    "abandoned",
    "anonymous",
    "blind-transfer",
    "concurrent-8",
    "regular-answered",
    "unicode-name",
    "unknown-caller",
    "vip-answered",
]
# caller → (queue, rule, customer id, customer name, tags) with the traces' CRM loaded
EXPECTED = {
    "+15551230001": ("senior", "vip", "cust-alice", "Alice Chen", "vip"),
    "+15551230002": ("support", "default", "cust-bob", "Bob Li", ""),
    "+8613800138000": ("senior", "vip", "cust-zhangwei", "张伟", "complaint-risk,vip"),
}
NOBODY = ("support", "default", "", "", "")


async def wait_for(predicate: Any, timeout_s: float = 5.0) -> None:
    """Poll a condition no component exposes as an event (the directory's cache state)."""
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("scenario", SCENARIOS_WITH_AGI)
async def test_recorded_sessions_get_the_scenarios_variables(
    scenario: str, traces: Path, stack: RouteStack, pool: asyncpg.Pool[Any]
) -> None:
    await load_trace_crm(pool)
    folder = traces / scenario
    facts = json.loads((folder / "scenario.json").read_text(encoding="utf-8"))
    links = linkedids(folder / "ami.log")
    sessions = agi_sessions(folder / "agi.log")
    assert len(sessions) == (8 if scenario == "concurrent-8" else 1)

    async def replay(session: Any) -> tuple[dict[str, str], str, str]:
        env = dict(
            line.split(": ", 1)
            for line in session.header.decode("utf-8").splitlines()
            if ": " in line
        )
        uniqueid, caller = env["agi_uniqueid"], env["agi_callerid"]
        result = await play_asterisk(stack.port, session.header, linkedid=links[uniqueid])
        assert result.closed_by_server
        assert result.commands[0] == "GET VARIABLE CHANNEL(linkedid)"
        return result.variables, caller, links[uniqueid]

    results = await asyncio.gather(*(replay(s) for s in sessions))
    for variables, caller, linkedid in results:
        queue, rule, customer_id, name, tags = EXPECTED.get(caller, NOBODY)
        assert queue == facts["queue"]
        if "customer" in facts:
            assert name == (facts["customer"] or "")
        assert variables == {
            "BRIDGE_QUEUE": queue,
            "BRIDGE_PRIORITY": "0",
            "BRIDGE_RULE": rule,
            "BRIDGE_CUSTOMER_ID": customer_id,
            "BRIDGE_CUSTOMER_NAME": name,
            "BRIDGE_TAGS": tags,
            "BRIDGE_DEGRADED": "0",
            "BRIDGE_RECORDING": f"{linkedid}.wav",
        }
    # record(): one route_decisions row per channel, with the linkedid learnt over AGI
    await stack.service.drain(within_s=5)
    rows = await pool.fetch("SELECT uniqueid, linkedid, caller_name, queue FROM route_decisions")
    assert {(r["linkedid"], r["queue"]) for r in rows} == {
        (linkedid, variables["BRIDGE_QUEUE"]) for variables, _, linkedid in results
    }
    if scenario == "unicode-name":
        assert rows[0]["caller_name"] == "张伟"


async def test_a_20_kb_caller_name_still_gets_the_vip_route(
    stack: RouteStack, pool: asyncpg.Pool[Any]
) -> None:
    await load_trace_crm(pool)
    normal = await play_asterisk(stack.port, header(), linkedid="1.1")
    big = header(calleridname="Ä" * 20_000, uniqueid="1795464246.2")
    huge = await play_asterisk(stack.port, big, linkedid="1.2")
    assert huge.variables["BRIDGE_QUEUE"] == normal.variables["BRIDGE_QUEUE"] == "senior"
    assert huge.variables["BRIDGE_CUSTOMER_ID"] == normal.variables["BRIDGE_CUSTOMER_ID"]
    await stack.service.drain(within_s=5)
    stored = await pool.fetchval("SELECT caller_name FROM route_decisions WHERE linkedid = '1.2'")
    assert stored == "Ä" * 256  # capped where the call is built


async def test_without_a_linkedid_the_uniqueid_names_the_recording(
    stack: RouteStack, pool: asyncpg.Pool[Any]
) -> None:
    await load_trace_crm(pool)
    result = await play_asterisk(stack.port, header(uniqueid="1795464246.7"), linkedid=None)
    assert result.variables["BRIDGE_RECORDING"] == "1795464246.7.wav"
    assert result.variables["BRIDGE_QUEUE"] == "senior"


async def test_ids_from_the_pbx_cannot_escape_the_recording_folder(stack: RouteStack) -> None:
    result = await play_asterisk(stack.port, header(uniqueid="1.2"), linkedid="../../etc/passwd x")
    # An id that is not a plain token is replaced by the channel's own uniqueid.
    assert result.variables["BRIDGE_RECORDING"] == "1.2.wav"


async def test_a_refused_set_variable_ends_the_session(
    stack: RouteStack, pool: asyncpg.Pool[Any]
) -> None:
    await load_trace_crm(pool)
    result = await play_asterisk(stack.port, header(), linkedid="1.1", refuse="BRIDGE_CUSTOMER_ID")
    assert result.closed_by_server
    assert list(result.variables) == ["BRIDGE_QUEUE", "BRIDGE_PRIORITY", "BRIDGE_RULE"]
    assert result.commands[-1].startswith("SET VARIABLE BRIDGE_CUSTOMER_ID")


async def test_a_local_number_is_normalised_with_the_default_region(
    stack: RouteStack, pool: asyncpg.Pool[Any]
) -> None:
    await load_trace_crm(pool)
    result = await play_asterisk(stack.port, header(callerid="(555) 123-0002"), linkedid="1.1")
    assert result.variables["BRIDGE_CUSTOMER_NAME"] == "Bob Li"


async def test_hostile_caller_values_are_sanitised_not_executed(
    stack: RouteStack, pool: asyncpg.Pool[Any]
) -> None:
    await pool.execute(
        "INSERT INTO customers (id, name) VALUES ('c1', $1)", 'Evil "Q" \\ Corp\r\nX'
    )
    await pool.execute(
        "INSERT INTO customer_phones (e164, customer_id) VALUES ('+15551239999', 'c1')"
    )
    result = await play_asterisk(
        stack.port,
        header(callerid="+15551239999", calleridname="'; DROP TABLE customers; -- \"\\"),
        linkedid="1.1",
    )
    assert result.variables["BRIDGE_CUSTOMER_NAME"] == 'Evil "Q" \\ Corp  X'
    assert all("\r" not in c for c in result.commands)
    assert await pool.fetchval("SELECT count(*) FROM customers") == 1
    await stack.service.drain(within_s=5)
    stored = await pool.fetchval("SELECT caller_name FROM route_decisions")
    assert stored == "'; DROP TABLE customers; -- \"\\"


async def test_a_tag_changed_in_the_database_routes_the_next_call_differently(
    stack: RouteStack, pool: asyncpg.Pool[Any]
) -> None:
    await load_trace_crm(pool)
    first = await play_asterisk(stack.port, header(callerid="+15551230002"), linkedid="1.1")
    assert first.variables["BRIDGE_QUEUE"] == "support"
    assert stack.directory.is_cached("+15551230002")
    await pool.execute("INSERT INTO customer_tags (customer_id, tag) VALUES ('cust-bob', 'vip')")
    await wait_for(lambda: not stack.directory.is_cached("+15551230002"))
    second = await play_asterisk(stack.port, header(callerid="+15551230002"), linkedid="1.2")
    assert second.variables["BRIDGE_QUEUE"] == "senior"
    assert second.variables["BRIDGE_TAGS"] == "vip"
    assert second.variables["BRIDGE_RULE"] == "vip"


async def test_a_locked_crm_row_gives_the_degraded_default_within_the_budget(
    pool: asyncpg.Pool[Any], database_url: str
) -> None:
    """A real lock: another transaction holds the customer row FOR UPDATE... and a slow query."""
    await load_trace_crm(pool)
    s = await start_stack(pool, agi_config(budget_ms=200))
    blocker = await asyncpg.connect(database_url)
    try:
        # An ACCESS EXCLUSIVE lock on customer_tags: the directory's lookup query blocks.
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE customer_tags IN ACCESS EXCLUSIVE MODE")
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await play_asterisk(s.port, header(callerid="+15551230001"), linkedid="9.9")
        elapsed_before_vars = loop.time() - started
        assert result.variables["BRIDGE_DEGRADED"] == "1"
        assert result.variables["BRIDGE_QUEUE"] == "support"
        assert result.variables["BRIDGE_RULE"] == "default"
        assert result.variables["BRIDGE_CUSTOMER_ID"] == ""
        assert result.variables["BRIDGE_RECORDING"] == "9.9.wav"
        assert elapsed_before_vars < 5  # did not hang on the lock
        await tx.rollback()
        after = await play_asterisk(s.port, header(callerid="+15551230001"), linkedid="9.10")
        assert after.variables["BRIDGE_DEGRADED"] == "0"
        assert after.variables["BRIDGE_QUEUE"] == "senior"
    finally:
        await blocker.close()
        await stop_stack(s)


class SleepyDirectory:
    """A directory whose query is slowed in PostgreSQL itself with pg_sleep."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def lookup(self, e164: str) -> Customer | None:
        try:
            await self._pool.execute("SELECT pg_sleep(3)")
        except asyncpg.PostgresError as exc:
            raise CrmUnavailable(str(exc)) from exc
        return Customer("x", "Never")


async def test_a_slow_crm_query_gives_the_degraded_default(pool: asyncpg.Pool[Any]) -> None:
    await load_trace_crm(pool)
    s = await start_stack(pool, agi_config(budget_ms=150), directory=SleepyDirectory(pool))
    try:
        results = await asyncio.gather(
            *(play_asterisk(s.port, header(uniqueid=f"1.{i}"), linkedid=f"2.{i}") for i in range(5))
        )
        for result in results:
            assert result.variables["BRIDGE_DEGRADED"] == "1"
            assert result.variables["BRIDGE_QUEUE"] == "support"
            assert result.variables["BRIDGE_CUSTOMER_NAME"] == ""
    finally:
        await stop_stack(s)


class StuckRouter:
    """A router with a bug: it ignores its own budget and never answers."""

    def __init__(self) -> None:
        self.recorded: list[Any] = []

    async def route(self, call: Any, deadline: float | None = None) -> Any:
        await asyncio.Event().wait()

    async def record(self, call: Any, decision: Any, recording: str | None) -> None:
        self.recorded.append((call, decision, recording))


async def test_the_handler_own_deadline_routes_even_when_the_router_hangs() -> None:
    from bridge.agi import build_agi_server

    router = StuckRouter()
    server = build_agi_server(agi_config(budget_ms=100), router)
    await server.start()
    try:
        result = await play_asterisk(server.port, header(), linkedid="5.5")
    finally:
        await server.stop()
    assert result.variables["BRIDGE_DEGRADED"] == "1"
    assert result.variables["BRIDGE_QUEUE"] == "support"
    [(call, decision, recording)] = router.recorded
    assert call.linkedid == "5.5" and decision.degraded and recording == "5.5.wav"


async def test_the_pbx_simulators_fastagi_client_is_routed(
    stack: RouteStack, pool: asyncpg.Pool[Any]
) -> None:
    """Cross-check with the project's own PBX simulator client (what `crm-bridge demo` runs)."""
    from bridge.sim.agi_client import run_agi
    from bridge.sim.wire import split_agi_args

    await load_trace_crm(pool)
    variables: dict[str, str] = {}

    async def answer(line: str) -> bytes:
        args = split_agi_args(line)
        if args[:2] == ["GET", "VARIABLE"]:
            return b"200 result=1 (1795464246.0)\n"
        variables[args[2]] = args[3]
        return b"200 result=1\n"

    env = [
        ("network_script", "route"),
        ("request", "agi://127.0.0.1/route"),
        ("channel", "PJSIP/trunk-00000007"),
        ("uniqueid", "1795464246.1"),
        ("callerid", "+8613800138000"),
        ("calleridname", "张伟"),
        ("extension", "18005550100"),
    ]
    assert await run_agi("127.0.0.1", stack.port, env, answer) == "SUCCESS"
    assert variables["BRIDGE_CUSTOMER_NAME"] == "张伟"
    assert variables["BRIDGE_TAGS"] == "complaint-risk,vip"
    assert variables["BRIDGE_RECORDING"] == "1795464246.0.wav"
