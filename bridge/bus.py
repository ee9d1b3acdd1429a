"""The event bus: one producer's events handed, in order, to the parts that use them.

The AMI link publishes the PBX's events here (`bridge.pbx_events`), the tracker feed turns them
into call events and publishes those too; pops, wallboard, participants and records take what
they need by type. Two kinds of consumers:

- observers, `observe(callback, types)`: `callback(events)` runs inline, inside `publish`, with
  the batch's events of those types (never an empty list). It runs before the next event is
  published, so it may read the producer's state as of these events (the pop hub routes that
  way, in PBX order). It must not wait. An observer may publish in turn (the tracker feed
  does): those events reach everyone before `publish` returns.
- subscribers, `subscribe(callback, types)`: `async callback(event)` on a task of its own,
  behind a queue of `queue_size` events, with one of two policies when it falls behind:
  - shedding (the default; screen-pops): new events for it are dropped and counted
    (`crm_bridge_ami_dropped_call_events_total`, named when the AMI link did the fan-out), so
    a slow browser fan-out never stalls the producer. One warning when an episode starts, one
    line when the subscriber has caught up.
  - `lossless=True` (the call-record writer): nothing is dropped; the queue grows past its
    bound and the subscriber reports itself `full`. The producer awaits `room()` before
    reading more input (the AMI link stops reading its socket), so a burst waits upstream
    instead of here. A 12,000-call burst once lost 1,981 records to the shedding policy.
  `batch=True` hands the callback a list of everything queued (up to `MAX_BATCH`) instead of
  one event: the record writer then spools a burst with one fsync instead of one per call.

A subscriber is offered an event before the observers see it: a raw `CdrRecord` is queued for
the writer before the tracker (an observer) turns it into call events, as it always was.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter

from bridge.component import Health
from bridge.tasks import cancel_and_wait

__all__ = ["MAX_BATCH", "EventBus", "Subscription"]

log = logging.getLogger(__name__)

MAX_BATCH = 1_000  # events handed at once to a `batch=True` subscriber
LOSSLESS_STOP_STALL_S = 5.0  # stop() gives up on a lossless subscriber making no progress

DROPPED = Counter(
    "crm_bridge_ami_dropped_call_events_total",
    "Events not delivered because a subscriber's queue was full",
)

Observer = Callable[[list[Any]], None]


@dataclass(frozen=True, slots=True)
class _Route:
    """Who takes events of one concrete type, worked out once per type."""

    subscriptions: tuple[Subscription, ...]
    observers: tuple[Observer, ...]


@dataclass(eq=False)
class Subscription:
    """One subscriber: its queue, its task and its delivery policy."""

    callback: Callable[[Any], Awaitable[None]]
    types: tuple[type, ...]
    queue: asyncio.Queue[Any]
    bound: int
    lossless: bool = False  # full: the producer waits for room instead of the bus dropping
    batch: bool = False  # the callback takes a list of events
    task: asyncio.Task[None] | None = None
    dropped: int = 0
    shedding: bool = False  # inside a drop episode (one warning each)
    _room: asyncio.Event = field(default_factory=asyncio.Event)  # set: under the bound

    @property
    def backlog(self) -> int:
        return self.queue.qsize()

    @property
    def full(self) -> bool:
        """A lossless subscriber at or over its bound: the producer should wait for room."""
        return self.lossless and not self._room.is_set()

    async def room(self) -> None:
        """Return once the subscriber is back under its bound (or has left)."""
        await self._room.wait()


class EventBus:
    """Component `events`: ordered inline observers and queued subscribers, by event type."""

    name = "events"

    def __init__(self, *, queue_size: int = 10_000) -> None:
        self._queue_size = queue_size
        self._observers: list[tuple[Observer, tuple[type, ...]]] = []
        self._subs: list[Subscription] = []
        self._routes: dict[type, _Route] = {}  # cleared whenever a consumer comes or goes
        self._started = False

    # --- consumers ---------------------------------------------------------------------

    def observe(self, callback: Observer, types: tuple[type, ...]) -> Callable[[], None]:
        """Call `callback(events)` inline with each published batch's events of `types`
        (see the module docstring); returns a function that stops it."""
        entry = (callback, types)
        self._observers.append(entry)
        self._routes.clear()

        def stop_observing() -> None:
            if entry in self._observers:
                self._observers.remove(entry)
                self._routes.clear()

        return stop_observing

    def subscribe(
        self,
        callback: Callable[[Any], Awaitable[None]],
        types: tuple[type, ...],
        *,
        lossless: bool = False,
        batch: bool = False,
    ) -> Callable[[], None]:
        """Deliver every published event of `types` to `callback` on its own task; returns a
        function that unsubscribes. `lossless`: never drop, make the producer wait instead;
        `batch`: `callback` receives a list of events."""
        # A lossless queue is unbounded: the producer, waiting for room, enforces its bound.
        queue: asyncio.Queue[Any] = asyncio.Queue(0 if lossless else self._queue_size)
        sub = Subscription(callback, types, queue, self._queue_size, lossless, batch)
        sub._room.set()
        self._subs.append(sub)
        self._routes.clear()
        if self._started:
            self._spawn_worker(sub)

        def unsubscribe() -> None:
            if sub in self._subs:
                self._subs.remove(sub)
                self._routes.clear()
            if sub.task is not None:
                sub.task.cancel()
            sub._room.set()  # never leave the producer waiting on a subscriber that left

        return unsubscribe

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(self._subs)

    # --- the producer ------------------------------------------------------------------

    def publish(self, events: Sequence[Any]) -> None:
        """Queue `events` for the subscribers of their types, then run the observers on
        them, in that order; never waits."""
        if not events:
            return
        for event in events:
            for sub in self._route(type(event)).subscriptions:
                self._offer(sub, event)
        if len(events) == 1:  # the usual case: one PBX event, or one call event
            batch = list(events)
            for callback in self._route(type(events[0])).observers:
                self._call(callback, batch)
            return
        for callback, types in list(self._observers):
            wanted = [event for event in events if isinstance(event, types)]
            if wanted:
                self._call(callback, wanted)

    def _route(self, kind: type) -> _Route:
        route = self._routes.get(kind)
        if route is None:
            route = _Route(
                tuple(sub for sub in self._subs if issubclass(kind, sub.types)),
                tuple(callback for callback, types in self._observers if issubclass(kind, types)),
            )
            self._routes[kind] = route
        return route

    @staticmethod
    def _call(callback: Observer, events: list[Any]) -> None:
        try:
            callback(events)
        except Exception:
            log.exception("event observer %r failed", callback)

    def full_subscriber(self) -> Subscription | None:
        """The first lossless subscriber over its bound, if any: the producer awaits its
        `room()` before producing more."""
        for sub in self._subs:
            if sub.full:
                return sub
        return None

    def _offer(self, sub: Subscription, event: Any) -> None:
        try:
            sub.queue.put_nowait(event)
        except asyncio.QueueFull:
            sub.dropped += 1
            DROPPED.inc()
            if not sub.shedding:
                sub.shedding = True
                log.warning(
                    "subscriber %r is %d events behind; dropping its events until it catches"
                    " up (counted in crm_bridge_ami_dropped_call_events_total)",
                    sub.callback,
                    sub.queue.qsize(),
                )
            return
        if sub.lossless and sub.queue.qsize() >= sub.bound:
            sub._room.clear()

    # --- delivery ----------------------------------------------------------------------

    def _spawn_worker(self, sub: Subscription) -> None:
        if sub.task is None or sub.task.done():
            sub.task = asyncio.create_task(self._deliver(sub), name="event-subscriber")

    async def _deliver(self, sub: Subscription) -> None:
        while True:
            events = [await sub.queue.get()]
            if sub.batch:
                while len(events) < MAX_BATCH and not sub.queue.empty():
                    events.append(sub.queue.get_nowait())
            try:
                if sub.batch:
                    await sub.callback(events)
                else:
                    await sub.callback(events[0])
            except Exception:
                log.exception("event subscriber %r failed", sub.callback)
            finally:
                for _ in events:
                    sub.queue.task_done()
            backlog = sub.queue.qsize()
            if backlog < sub.bound:
                sub._room.set()
            if backlog == 0 and sub.shedding:
                sub.shedding = False
                log.info(
                    "subscriber %r caught up; %d events dropped so far",
                    sub.callback,
                    sub.dropped,
                )

    # --- component API -----------------------------------------------------------------

    async def start(self) -> None:
        """Start one delivery task per subscriber (later subscribers get theirs at once)."""
        if self._started:
            return
        self._started = True
        for sub in self._subs:
            self._spawn_worker(sub)

    async def stop(self) -> None:
        """Let subscribers drain (bounded), then end their tasks. Stop the producers first."""
        if not self._started:
            return
        for sub in self._subs:
            await self._drain(sub)
            await cancel_and_wait(sub.task)
            sub.task = None
        self._started = False

    async def _drain(self, sub: Subscription) -> None:
        """Let a subscriber finish its queue: 5 s for a shedding one; a lossless one as
        long as it makes progress (what it holds exists nowhere else)."""
        while sub.task is not None and not sub.task.done():
            before = sub.queue.qsize()
            try:
                await asyncio.wait_for(sub.queue.join(), timeout=LOSSLESS_STOP_STALL_S)
                return
            except TimeoutError:
                if not sub.lossless or sub.queue.qsize() >= before:
                    if sub.queue.qsize():
                        log.warning(
                            "subscriber %r stopped with %d events undelivered",
                            sub.callback,
                            sub.queue.qsize(),
                        )
                    return

    def health(self) -> Health:
        return Health(
            state="up" if self._started else "down",
            required=False,
            detail={
                "subscribers": len(self._subs),
                "dropped": sum(sub.dropped for sub in self._subs),
                "behind": sum(sub.backlog for sub in self._subs),
            },
        )
