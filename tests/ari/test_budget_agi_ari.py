"""One budget, one fallback: a CRM that never answers gives AGI and ARI callers the same
default-route variables, within the budget, and the route service counts each as degraded."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from bridge.crm.directory import PostgresDirectory
from bridge.models import Customer
from bridge.routing.budget import by_deadline, default_route
from bridge.routing.service import PostgresDecisionLog, RouteService
from bridge.routing.store import RuleStore
from bridge.routing.variables import contract_variables
from tests.agi.client import header, play_asterisk
from tests.agi.conftest import agi_config, start_stack, stop_stack
from tests.ari.conftest import RunApp, ari_config
from tests.ari.fake_ari import FakeAri, channel_json, stasis_start
from tests.crm.fixture_crm import load_trace_crm


class BlockedDirectory:
    """A CRM that takes every lookup and answers none until `release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.asked = 0

    async def lookup(self, e164: str) -> Customer | None:
        self.asked += 1
        await self.release.wait()
        return Customer("late", "Too Late")


def without_recording(variables: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in variables.items() if k != "BRIDGE_RECORDING"}


async def test_agi_and_ari_give_identical_default_variables_when_the_crm_overruns(
    pool: asyncpg.Pool[Any], fake: FakeAri, run_app: RunApp
) -> None:
    await load_trace_crm(pool)
    blocked = BlockedDirectory()
    agi = await start_stack(pool, agi_config(budget_ms=200), directory=blocked)
    try:
        agi_result = await play_asterisk(agi.port, header(uniqueid="7.1"), linkedid="7.0")
    finally:
        await stop_stack(agi)

    ari_blocked = BlockedDirectory()
    directory, rules = PostgresDirectory(pool), RuleStore(pool)
    await directory.start()
    await rules.start()
    service = RouteService(
        ari_blocked,
        rules,
        ari_config(fake.url, budget_ms=200),
        decisions=PostgresDecisionLog(rules.pool),
    )
    try:
        fake.park(channel_json("slow.1", number="+15551230001"), linkedid="8.0")
        async with run_app(service, budget_ms=200) as app:
            await fake.send(stasis_start(fake.channels["slow.1"]))
            await fake.wait_for(lambda: "slow.1" in fake.continued(), within=5)
            await app.idle()
        ari_degraded = service.degraded_count
    finally:
        await service.stop()
        await rules.stop()
        await directory.stop()

    expected = dict(contract_variables(default_route(agi.config.routing), "x.wav"))
    assert expected["BRIDGE_DEGRADED"] == "1" and expected["BRIDGE_QUEUE"] == "support"
    assert without_recording(agi_result.variables) == without_recording(expected)
    assert without_recording(fake.variables_of("slow.1")) == without_recording(expected)
    assert agi_result.variables["BRIDGE_RECORDING"] == "7.0.wav"
    assert blocked.asked == 1 and ari_blocked.asked == 1
    # The session's deadline and the service's are one: the service saw its own overrun.
    assert agi.service.degraded_count == 1 and ari_degraded == 1


async def test_by_deadline_returns_a_ready_result_and_times_out_a_blocked_one() -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[int] = loop.create_future()
    ready.set_result(5)
    assert await by_deadline(ready, loop.time() - 1) == 5  # ready work is never refused
    gate = asyncio.Event()
    blocked = asyncio.ensure_future(gate.wait())
    try:
        await by_deadline(blocked, loop.time())
    except TimeoutError:
        pass
    else:
        raise AssertionError("a blocked work past its deadline must time out")
    assert not blocked.done()  # left to the caller: not cancelled under it
    blocked.cancel()


async def test_by_deadline_cancels_the_work_when_its_caller_is_cancelled() -> None:
    loop = asyncio.get_running_loop()
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    blocked = asyncio.ensure_future(hang())
    waiter = asyncio.ensure_future(by_deadline(blocked, loop.time() + 3600))
    await started.wait()  # both tasks have run their first step: the waiter is waiting
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    await asyncio.gather(blocked, return_exceptions=True)
    assert blocked.cancelled()
