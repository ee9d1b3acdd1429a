"""Component `wallboard`: keeps today's tallies and pushes `queue.stats` to supervisors.

Inputs, and where each comes from:
- live calls: the tracker's `snapshot()`, read when figures are computed (the one truth);
- today's answered/abandoned calls and each agent's calls: counted from the tracker's
  `CallEnded` events as they pass (`dispatch`, called where the tracker emits, like the pop
  hub), seeded at start from `call_records` so a restart does not zero the board;
- queue members and who is paused: the PBX's `QueueStatus` (`QueueControl`), asked every
  `[wallboard] refresh_s` and right after a pause;
- wrap-up: a `CallEnded` starts it for each agent who talked on the call; it ends when the
  agent's disposition is in `call_dispositions` (looked for every `refresh_s`, or at once
  through `filed()`), when `[wallboard] wrapup_s` passes, or with the agent's next call.

After each event batch and each members refresh, the queues concerned are published through
`publish(queue, message)` (the hub's `publish_queue`): only supervisors following a queue
receive it. "Today" is the calendar day in `[routing] timezone`.

With several PBXs each PBX's queue is its own, named `east:support` (`pbx_queue`: from the
prefix of the call id or the member's device); a single PBX's queues keep their names.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import asyncpg

from bridge.clock import WallClock, utc_now
from bridge.component import Health, State
from bridge.db.errors import DB_ERRORS
from bridge.errors import BridgeError
from bridge.models import CallEnded, CallEvent
from bridge.pbx.namespace import pbx_queue
from bridge.pops.protocol import queue_stats_message
from bridge.tasks import cancel_and_wait
from bridge.tracker.tracker import LiveCall
from bridge.wallboard.ami import PauseFailed, QueueControl
from bridge.wallboard.stats import Member, QueueStats, Tally, queue_stats

log = logging.getLogger(__name__)

__all__ = ["Snapshot", "WallBoard"]

Publish = Callable[[str, dict[str, Any]], None]
Wanted = Callable[[str], bool]  # (queue) -> whether anyone follows it now

# `pbx`: the `east:` of a namespaced call id (`pbx_queue`'s rule), '' for a single PBX's.
_TODAY_QUEUES = """
SELECT queue,
       coalesce(substring(call_id from '^[a-z0-9](?:[a-z0-9-]{0,14}[a-z0-9])?:'), '') AS pbx,
       count(*) FILTER (WHERE outcome = 'answered') AS answered,
       count(*) FILTER (WHERE outcome = 'abandoned') AS abandoned,
       count(*) FILTER (WHERE outcome = 'answered'
                          AND answered_at <= started_at + make_interval(secs => $2)) AS within
  FROM call_records WHERE started_at >= $1 AND queue IS NOT NULL AND queue <> ''
 GROUP BY queue, pbx
"""
_TODAY_AGENTS = """
SELECT a->>'agent' AS agent, count(*) AS calls
  FROM call_records r, jsonb_array_elements(r.agents) a
 WHERE r.started_at >= $1 AND a->>'agent' IS NOT NULL
 GROUP BY 1
"""

_FILED = "SELECT call_id, agent_id FROM call_dispositions WHERE call_id = ANY($1::text[])"


class Snapshot(Protocol):
    def snapshot(self) -> list[LiveCall]: ...


class WallBoard:
    name = "wallboard"

    def __init__(
        self,
        live: Snapshot,
        *,
        control: QueueControl | None = None,
        agent_of: Callable[[str], str | None] = lambda device: None,
        sla_s: int = 20,
        wrapup_s: int = 120,
        refresh_s: float = 2.0,
        timezone: str = "UTC",
        pool: asyncpg.Pool[Any] | None = None,
        queues: Iterable[str] = (),
        clock: WallClock = utc_now,
        customer_name: Callable[[str], str | None] = lambda call_id: None,
    ) -> None:
        self._live = live
        self._control = control
        self._agent_of = agent_of
        self._sla_s = sla_s
        self._wrapup_s = wrapup_s
        self._wrapups: dict[str, tuple[str, datetime]] = {}  # device -> (call id, ended at)
        self._refresh_s = refresh_s
        self._zone = ZoneInfo(timezone)
        self._pool = pool
        self._clock = clock
        self._customer_name = customer_name
        self._known = set(queues)
        self._seen: set[str] = set()  # queues named by call events since start (or today)
        self._members: list[Member] = []
        self._member_queues: set[str] = set()  # the queues of `_members`, as the board names them
        self._tallies: dict[str, Tally] = {}
        self._agent_calls: dict[str, int] = {}
        self._day = self._today()
        self._publish: list[tuple[Publish, Wanted | None]] = []
        self._task: asyncio.Task[None] | None = None
        self._pbx_ok: bool | None = None

    # --- wiring ------------------------------------------------------------------------------

    def use_control(self, control: QueueControl) -> None:
        """The PBX side (members, pauses), once the AMI link exists."""
        self._control = control

    def on_stats(self, publish: Publish, wanted: Wanted | None = None) -> None:
        """`publish(queue, queue.stats message)` after every change; with `wanted`, only
        while `wanted(queue)`: the figures of a queue nobody follows are not built (with
        500 members they cost milliseconds, and a busy queue changes many times a second)."""
        self._publish.append((publish, wanted))

    # --- Component ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self.seed()
        self._task = asyncio.create_task(self._poll())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def health(self) -> Health:
        state: State = "up" if self._pbx_ok is not False else "degraded"
        return Health(state, required=False, detail={"queues": len(self.queues())})

    # --- inputs ------------------------------------------------------------------------------

    def dispatch(self, events: Iterable[CallEvent], *, received: float | None = None) -> None:
        """Count ended calls and push the queues that changed. Never raises."""
        touched: set[str] = set()
        unknown = False  # an event whose queue it does not say: any queue may have changed
        self._roll_day()
        for event in events:
            view = getattr(event, "queue", None)
            if isinstance(event, CallEnded):
                queue = self._count(event)
                if queue is None:
                    unknown = True
                else:
                    touched.add(queue)
            elif isinstance(view, str) and view:
                queue = pbx_queue(event.call_id, view)
                self._seen.add(queue)
                touched.add(queue)
            else:
                unknown = True
        if unknown:
            # Every queue a live call may be in, without listing the live calls: a snapshot
            # per event costs O(live calls), milliseconds at a thousand agents.
            touched.update(self._known, self._seen, self._member_queues)
        for queue in touched:
            self._push(queue)

    async def handle_all(self, events: Iterable[CallEvent]) -> None:
        self.dispatch(events)

    def _count(self, event: CallEnded) -> str | None:
        """Counts an ended call; returns its queue as the board names it (None: no queue)."""
        s = event.summary
        for leg in s.agents:
            agent = self._agent_of(leg.device) or leg.device
            self._agent_calls[agent] = self._agent_calls.get(agent, 0) + 1
            if self._wrapup_s > 0:
                self._wrapups[leg.device] = (s.call_id, s.ended_at)
        if not s.queue:
            return None
        queue = pbx_queue(s.call_id, s.queue)
        self._known.add(queue)
        tally = self._tallies.setdefault(queue, Tally())
        if s.outcome == "answered":
            tally.answered += 1
            if s.answered_at is not None and (s.answered_at - s.started_at) <= timedelta(
                seconds=self._sla_s
            ):
                tally.within_sla += 1
        elif s.outcome == "abandoned":
            tally.abandoned += 1
        return queue

    async def seed(self) -> None:
        """Today's tallies from `call_records` (calls that ended before this start)."""
        if self._pool is None:
            return
        since = self._midnight()
        try:
            queues = await self._pool.fetch(_TODAY_QUEUES, since, float(self._sla_s))
            agents = await self._pool.fetch(_TODAY_AGENTS, since)
        except DB_ERRORS as exc:
            log.warning("wallboard: cannot read today's calls: %s", exc)
            return
        for row in queues:
            queue = row["pbx"] + row["queue"]
            self._known.add(queue)
            tally = self._tallies.setdefault(queue, Tally())
            tally.answered += row["answered"]
            tally.abandoned += row["abandoned"]
            tally.within_sla += row["within"]
        self._agent_calls = {row["agent"]: row["calls"] for row in agents}

    async def refresh(self) -> None:
        """Ask the PBX for its queue members now, then push every queue."""
        if self._control is None:
            return
        try:
            self._members = await self._control.members()
            self._member_queues = {pbx_queue(m.device, m.queue) for m in self._members}
            self._pbx_ok = True
        except BridgeError as exc:
            if self._pbx_ok is not False:
                log.info("wallboard: queue members unavailable: %s", exc)
            self._pbx_ok = False
            return
        self._known.update(self._member_queues)
        for queue in self.queues():
            self._push(queue)

    async def ready(self) -> None:
        """Ask the PBX now unless a listing already succeeded (a reader arriving before the
        first poll, e.g. right after start, gets the members rather than none)."""
        if self._pbx_ok is not True:
            await self.refresh()

    async def pause(self, device: str, paused: bool, reason: str) -> None:
        """Pause (or resume) a device in all its queues, then refresh. Raises PauseFailed."""
        if self._control is None:
            raise PauseFailed("pausing needs the AMI link to the PBX")
        await self._control.pause(device, paused, reason)
        await self.refresh()

    def status_of(self, device: str) -> tuple[bool, str] | None:
        """(paused, reason) of a device as last listed by the PBX; None if no member."""
        mine = [m for m in self._members if m.device == device]
        if not mine:
            return None
        paused = [m for m in mine if m.paused]
        return (True, paused[0].reason) if paused else (False, "")

    def queues_of(self, device: str) -> set[str] | None:
        """The queues `device` is a member of, as its PBX names them (`support`, what call
        records hold); None before the PBX has listed its members."""
        if not self._members:
            return None
        return {m.queue for m in self._members if m.device == device}

    def filed(self, call_id: str, agent: str) -> None:
        """A disposition was filed: that agent's wrap-up of that call is over."""
        done = [
            device
            for device, (cid, _) in self._wrapups.items()
            if cid == call_id and (self._agent_of(device) or device) == agent
        ]
        for device in done:
            del self._wrapups[device]
        if done:
            for queue in self.queues():
                self._push(queue)

    async def sweep_wrapups(self) -> None:
        """Drop wrap-ups whose disposition is filed or whose time is up; push if any went."""
        if not self._wrapups:
            return
        now = self._clock()
        limit = timedelta(seconds=self._wrapup_s)
        gone = {d for d, (_, ended) in self._wrapups.items() if now - ended >= limit}
        if self._pool is not None:
            calls = sorted({cid for cid, _ in self._wrapups.values()})
            try:
                rows = await self._pool.fetch(_FILED, calls)
            except DB_ERRORS as exc:
                log.info("wallboard: cannot read dispositions: %s", exc)
                rows = []
            filed = {(row["call_id"], row["agent_id"]) for row in rows}
            gone.update(
                device
                for device, (cid, _) in self._wrapups.items()
                if (cid, self._agent_of(device) or device) in filed
            )
        for device in gone:
            self._wrapups.pop(device, None)
        if gone:
            for queue in self.queues():
                self._push(queue)

    async def _poll(self) -> None:
        while True:
            if self._control is not None:
                await self.refresh()
            await self.sweep_wrapups()
            await asyncio.sleep(self._refresh_s)

    # --- outputs -----------------------------------------------------------------------------

    def queues(self) -> list[str]:
        return sorted(self._known | self._live_queues() | self._member_queues)

    def _live_queues(self) -> set[str]:
        return {pbx_queue(c.call_id, c.queue) for c in self._live.snapshot() if c.queue}

    def use_names(self, customer_name: Callable[[str], str | None]) -> None:
        """Where the customer names of live calls come from (the pop hub's cards)."""
        self._customer_name = customer_name

    def stats(self, queue: str, calls: list[LiveCall] | None = None) -> QueueStats:
        self._roll_day()
        return self._stats(queue, _named(self._live.snapshot() if calls is None else calls))

    def _stats(self, queue: str, calls: list[LiveCall]) -> QueueStats:
        """`queue`'s figures from `calls` whose `queue` is already as the board names it."""
        members = [_named_member(m) for m in self._members]
        names = {}
        for call in calls:
            if call.queue == queue and (name := self._customer_name(call.call_id)):
                names[call.call_id] = name
        return queue_stats(
            queue,
            calls,
            members,
            self._tallies.get(queue, Tally()),
            now=self._clock(),
            agent_of=self._agent_of,
            calls_today=self._agent_calls,
            customer_of=names,
            wrapups={device: ended for device, (_, ended) in self._wrapups.items()},
            wrapup_s=self._wrapup_s,
        )

    def all_stats(self) -> list[QueueStats]:
        self._roll_day()
        calls = _named(self._live.snapshot())
        return [self._stats(queue, calls) for queue in self.queues()]

    def message(self, queue: str) -> dict[str, Any]:
        return queue_stats_message(self.stats(queue), self._clock())

    def _push(self, queue: str) -> None:
        targets = [publish for publish, wanted in self._publish if wanted is None or wanted(queue)]
        if not targets:
            return
        try:
            message = self.message(queue)
        except Exception:
            log.exception("wallboard: figures of queue %s failed", queue)
            return
        for publish in targets:
            publish(queue, message)

    # --- the day -----------------------------------------------------------------------------

    def _today(self) -> Any:
        return self._clock().astimezone(self._zone).date()

    def _midnight(self) -> datetime:
        return datetime.combine(self._today(), time(0), tzinfo=self._zone)

    def _roll_day(self) -> None:
        today = self._today()
        if today != self._day:
            self._day = today
            self._tallies.clear()
            self._agent_calls.clear()
            self._seen = self._live_queues()


def _named(calls: list[LiveCall]) -> list[LiveCall]:
    """`calls` with each one's `queue` as the board names it (`east:support` for a namespaced
    PBX's call): `queue_stats` matches on it. A single PBX's calls are returned as they are."""
    out = calls
    for i, call in enumerate(calls):
        if call.queue and (queue := pbx_queue(call.call_id, call.queue)) != call.queue:
            if out is calls:
                out = list(calls)
            out[i] = dataclasses.replace(call, queue=queue)
    return out


def _named_member(member: Member) -> Member:
    queue = pbx_queue(member.device, member.queue)
    return member if queue == member.queue else dataclasses.replace(member, queue=queue)
