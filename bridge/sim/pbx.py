"""The simulated PBX: channels, queues and calls, feeding events to listeners (the AMI server).

`SimPbx.place_call(plan)` runs one call; `run_random(...)` places calls at the configured
rate with random callers, ring and talk times, abandons and transfers (the demo);
`run_scenario(name)` reproduces one recorded call from tests/fixtures/asterisk-traces.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

from bridge.sim.call import CallResult, CallRun
from bridge.sim.channels import Channel, Ids
from bridge.sim.clock import Clock, RealClock
from bridge.sim.model import CallPlan, SimConfig, SimQueue, Transfer
from bridge.sim.wire import encode_message
from bridge.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Listener = Callable[[str, bytes], None]  # (privilege, encoded event)


class SimPbx:
    def __init__(
        self, config: SimConfig, *, clock: Clock | None = None, rng: random.Random | None = None
    ) -> None:
        self.config = config
        self.clock: Clock = clock or RealClock()
        self.rng = rng or random.Random(config.seed)
        epoch = config.uniqueid_epoch
        self.ids = Ids(self.clock.now if epoch is None else lambda: float(epoch))
        self.channels: dict[str, Channel] = {}
        self.queue_entries: dict[str, list[Channel]] = {q.name: [] for q in config.queues}
        self.busy: set[str] = set()
        self.freed_at: dict[str, float] = {}  # agent -> when its last call released it
        self.talking: set[str] = set()  # members connected to a caller (QueueMember InCall)
        self.paused: dict[str, str] = {}  # paused members (QueuePause) -> reason
        self.results: list[CallResult] = []
        self._listeners: list[Listener] = []
        self._rr_last: dict[str, str] = {}
        self._freed = asyncio.Condition()
        self._tasks: set[asyncio.Task[CallResult | None]] = set()
        self._threads = 0
        self._notifiers: set[asyncio.Task[None]] = set()

    # --- events -------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def emit(self, fields: list[tuple[str, str]]) -> None:
        privilege = next((v for k, v in fields if k == "Privilege"), "")
        data = encode_message(fields)
        for listener in list(self._listeners):
            listener(privilege, data)

    def ids_counter(self) -> int:
        self._threads += 1
        return self._threads

    # --- channels and queue state -----------------------------------------------------------
    def channel_born(self, chan: Channel) -> None:
        self.channels[chan.name] = chan

    def channel_gone(self, chan: Channel) -> None:
        self.channels.pop(chan.name, None)

    def queue_join(self, queue: str, chan: Channel) -> int:
        entries = self.queue_entries.setdefault(queue, [])
        entries.append(chan)
        return len(entries)

    def queue_position(self, queue: str, chan: Channel) -> int:
        entries = self.queue_entries.get(queue, [])
        return entries.index(chan) + 1 if chan in entries else 0

    def queue_leave(self, queue: str, chan: Channel) -> int:
        position = self.queue_position(queue, chan)
        if position:
            self.queue_entries[queue].remove(chan)
        return position

    def _pick(self, queue: SimQueue, first: str | None) -> list[str]:
        free = [m for m in queue.members if m not in self.busy and m not in self.paused]
        if not free:
            return []
        if queue.strategy == "ringall":
            return free
        members = list(queue.members)
        if first in members:
            start = members.index(first)
        elif queue.name in self._rr_last and self._rr_last[queue.name] in members:
            start = members.index(self._rr_last[queue.name]) + 1
        else:
            start = 0
        for i in range(len(members)):
            candidate = members[(start + i) % len(members)]
            if candidate in free:
                self._rr_last[queue.name] = candidate
                return [candidate]
        return []  # pragma: no cover - free is not empty

    async def take_members(
        self, queue: SimQueue, first: str | None, clock: Clock, within_s: float
    ) -> list[str] | None:
        """Members to ring (marked busy), waiting for one to be free; None after `within_s`."""
        targets = self._pick(queue, first)
        if targets:
            self.busy.update(targets)
            return targets

        async def wait_free() -> list[str]:
            async with self._freed:
                while True:
                    picked = self._pick(queue, first)
                    if picked:
                        self.busy.update(picked)
                        return picked
                    await self._freed.wait()

        waiter = asyncio.ensure_future(wait_free())
        timer = asyncio.ensure_future(clock.sleep(within_s))
        try:
            await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not waiter.done():
                waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
        if waiter.cancelled():
            return None
        return waiter.result()

    def freed_since(self, exts: list[str]) -> float:
        """The script time from which all of `exts` were free (0 if never released)."""
        return max((self.freed_at.get(ext, 0.0) for ext in exts), default=0.0)

    def free_agent(self, exclude: str = "") -> str:
        """A random idle agent other than `exclude`, or "" when all are busy."""
        free = [a.ext for a in self.config.agents if a.ext not in self.busy and a.ext != exclude]
        return self.rng.choice(free) if free else ""

    def pause(self, ext: str, paused: bool, reason: str = "") -> None:
        """QueuePause: a paused member is not rung from its queues until resumed."""
        if paused:
            self.paused[ext] = reason
        else:
            self.paused.pop(ext, None)
            task = asyncio.ensure_future(self._notify())  # queued callers may ring it now
            self._notifiers.add(task)
            task.add_done_callback(self._notifiers.discard)

    def try_take(self, ext: str) -> bool:
        if ext in self.busy:
            return False
        self.busy.add(ext)
        return True

    def release(self, ext: str, at: float | None = None) -> None:
        """`ext` is free again; `at` is the releasing call's script time (its Timeline)."""
        self.busy.discard(ext)
        if at is not None:
            self.freed_at[ext] = max(at, self.freed_at.get(ext, at))
        self.talking.discard(ext)
        task = asyncio.ensure_future(self._notify())
        self._notifiers.add(task)
        task.add_done_callback(self._notifiers.discard)

    async def _notify(self) -> None:
        async with self._freed:
            self._freed.notify_all()

    # --- calls ----------------------------------------------------------------------------
    async def call(self, plan: CallPlan, at: float | None = None) -> CallResult:
        """Run one call; `at` is its arrival in script time (default: the clock's second)."""
        result = await CallRun(self, plan, at).run()
        self.results.append(result)
        return result

    def place_call(
        self, plan: CallPlan, at: float | None = None
    ) -> asyncio.Task[CallResult | None]:
        task: asyncio.Task[CallResult | None] = asyncio.ensure_future(self._guarded(plan, at))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guarded(self, plan: CallPlan, at: float | None) -> CallResult | None:
        try:
            return await self.call(plan, at)
        except Exception:
            log.exception("simulated call failed")
            return None

    def random_plan(self) -> CallPlan:
        cfg, rng = self.config, self.rng
        number, name = rng.choice(cfg.callers)
        abandon = rng.uniform(1.0, cfg.ring_s[1] + 5.0) if rng.random() < cfg.abandon_rate else None
        transfer = None
        if abandon is None and rng.random() < cfg.transfer_rate and len(cfg.agents) > 1:
            transfer = Transfer(
                after_s=rng.uniform(2.0, 6.0),
                to_ext="",  # whoever is free at the time
                talk_s=rng.uniform(*cfg.talk_s),
                ring_s=rng.uniform(*cfg.ring_s),
            )
        return CallPlan(
            caller=number,
            caller_name=name,
            did=cfg.did,
            ring_s=rng.uniform(*cfg.ring_s),
            ring_overrides=tuple((a.ext, rng.uniform(*cfg.ring_s)) for a in cfg.agents),
            talk_s=rng.uniform(*cfg.talk_s),
            abandon_after_s=abandon,
            transfer=transfer,
        )

    async def run_random(self, stop: asyncio.Event | None = None, count: int | None = None) -> None:
        """Place calls with exponential gaps at `calls_per_minute` until `stop` or `count`.

        Arrivals are scripted too (the first on the clock's second, then gap after gap), so
        how long callers wait for a free agent is the script's, not the machine's load.
        """
        arrival = float(int(self.clock.now()))
        stop = stop or asyncio.Event()
        rate = max(self.config.calls_per_minute, 0.001) / 60.0
        placed = 0
        while not stop.is_set() and (count is None or placed < count):
            self.place_call(self.random_plan(), arrival)
            placed += 1
            pause = self.rng.expovariate(rate)
            arrival += pause
            gap = asyncio.ensure_future(self.clock.sleep(pause))
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({gap, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for fut in (gap, stopper):
                fut.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await fut

    async def run_scenario(self, name: str) -> list[CallResult]:
        from bridge.sim.scenarios import scenario

        plans = scenario(name)
        tasks = [self.place_call(plan) for plan in plans]
        results = await asyncio.gather(*tasks)
        return [r for r in results if r is not None]

    async def drain(self) -> None:
        """Wait for every call in progress to end."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def stop(self) -> None:
        """End the calls in progress: each still-up channel hangs up (cause 16), the rest of
        their script (AgentComplete, Cdr) is not played; every agent is free again."""
        tasks = list(self._tasks)
        await cancel_and_wait(*tasks)
        self.busy.clear()
        self.talking.clear()
