"""The event bus on its own: typed delivery, PBX order for inline observers, shedding and
lossless subscribers, batches, and what stop() hands over. No network, no database."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import pytest

from bridge.bus import MAX_BATCH, EventBus

WAIT = 10.0  # generous "did not hang" bound


@dataclass(frozen=True)
class Raw:
    n: int


@dataclass(frozen=True)
class Derived:
    n: int


async def test_observers_run_inline_in_order_with_only_their_types() -> None:
    bus = EventBus()
    seen: list[tuple[str, list[Any]]] = []
    bus.observe(lambda events: seen.append(("raw", events)), (Raw,))
    bus.observe(lambda events: seen.append(("both", events)), (Raw, Derived))
    bus.observe(lambda events: seen.append(("derived", events)), (Derived,))
    bus.publish([Raw(1), Derived(2), Raw(3)])
    assert seen == [
        ("raw", [Raw(1), Raw(3)]),
        ("both", [Raw(1), Derived(2), Raw(3)]),
        ("derived", [Derived(2)]),
    ]
    seen.clear()
    bus.publish([Raw(4)])
    bus.publish([])
    assert seen == [("raw", [Raw(4)]), ("both", [Raw(4)])]  # never an empty list


async def test_an_observer_that_publishes_reaches_everyone_before_the_next_event() -> None:
    """The tracker feed's shape: a raw event in, derived events out at once, so a later
    observer sees each derived batch before the next raw event is published."""
    bus = EventBus()
    order: list[object] = []
    bus.observe(lambda events: bus.publish([Derived(e.n * 10) for e in events]), (Raw,))
    bus.observe(order.extend, (Derived,))
    bus.observe(lambda events: order.append("raw seen"), (Raw,))
    bus.publish([Raw(1)])
    bus.publish([Raw(2)])
    assert order == [Derived(10), "raw seen", Derived(20), "raw seen"]


async def test_a_failing_observer_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    got: list[Any] = []

    def boom(events: list[Any]) -> None:
        raise RuntimeError("observer bug")

    bus.observe(boom, (Raw,))
    bus.observe(got.extend, (Raw,))
    bus.publish([Raw(1)])
    assert got == [Raw(1)]
    assert "observer bug" in caplog.text


async def test_a_subscriber_is_queued_before_the_observers_run() -> None:
    """A raw event reaches a subscriber's queue before an observer derives from it, so one
    subscriber of both types receives them in cause order."""
    bus = EventBus()
    got: list[Any] = []
    done = asyncio.Event()

    async def collect(event: Any) -> None:
        got.append(event)
        if len(got) == 2:
            done.set()

    bus.observe(lambda events: bus.publish([Derived(e.n) for e in events]), (Raw,))
    bus.subscribe(collect, (Raw, Derived))
    await bus.start()
    try:
        bus.publish([Raw(7)])
        await asyncio.wait_for(done.wait(), WAIT)
    finally:
        await bus.stop()
    assert got == [Raw(7), Derived(7)]


async def test_unsubscribe_and_stop_observing() -> None:
    bus = EventBus()
    seen: list[Any] = []
    stop = bus.observe(seen.extend, (Raw,))
    unsubscribe = bus.subscribe(lambda event: asyncio.sleep(0), (Raw,))
    stop()
    unsubscribe()
    bus.publish([Raw(1)])
    assert seen == [] and bus.subscriptions == ()


async def test_a_shedding_subscriber_drops_with_one_warning_per_episode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.bus")
    bus = EventBus(queue_size=2)
    release = asyncio.Event()
    got: list[Any] = []
    caught_up = asyncio.Event()

    async def slow(event: Any) -> None:
        await release.wait()
        got.append(event)
        if event == Raw(99):
            caught_up.set()

    bus.subscribe(slow, (Raw,))
    await bus.start()
    try:
        bus.publish([Raw(n) for n in range(10)])
        (sub,) = bus.subscriptions
        assert sub.dropped == 8 and not sub.full  # shedding is never "full"
        assert bus.full_subscriber() is None
        release.set()
        await asyncio.wait_for(sub.queue.join(), WAIT)
        bus.publish([Raw(99)])
        await asyncio.wait_for(caught_up.wait(), WAIT)
    finally:
        await bus.stop()
    assert got == [Raw(0), Raw(1), Raw(99)]
    drops = [r for r in caplog.records if "dropping its events" in r.getMessage()]
    assert len(drops) == 1
    assert any("caught up; 8 events dropped" in r.getMessage() for r in caplog.records)


async def test_a_lossless_subscriber_keeps_everything_and_asks_the_producer_to_wait() -> None:
    bus = EventBus(queue_size=3)
    release = asyncio.Event()
    got: list[Any] = []

    async def slow(event: Any) -> None:
        await release.wait()
        got.append(event)

    bus.subscribe(slow, (Raw,), lossless=True)
    await bus.start()
    try:
        bus.publish([Raw(n) for n in range(2)])
        assert bus.full_subscriber() is None  # under its bound
        bus.publish([Raw(n) for n in range(2, 10)])  # past it: kept, but full
        full = bus.full_subscriber()
        assert full is not None and full.backlog >= 3 and full.dropped == 0
        room = asyncio.ensure_future(full.room())
        await asyncio.sleep(0)
        assert not room.done()
        release.set()
        await asyncio.wait_for(room, WAIT)
        await asyncio.wait_for(full.queue.join(), WAIT)
        assert bus.full_subscriber() is None
    finally:
        await bus.stop()
    assert got == [Raw(n) for n in range(10)]


async def test_unsubscribing_a_full_lossless_subscriber_frees_the_producer() -> None:
    bus = EventBus(queue_size=1)
    never = asyncio.Event()

    async def stuck(event: Any) -> None:
        await never.wait()

    unsubscribe = bus.subscribe(stuck, (Raw,), lossless=True)
    await bus.start()
    bus.publish([Raw(1), Raw(2), Raw(3)])
    full = bus.full_subscriber()
    assert full is not None
    unsubscribe()
    await asyncio.wait_for(full.room(), WAIT)
    assert bus.full_subscriber() is None
    await bus.stop()


async def test_batch_delivery_hands_over_what_is_queued_up_to_max_batch() -> None:
    bus = EventBus(queue_size=10 * MAX_BATCH)
    batches: list[list[Any]] = []
    total = MAX_BATCH + 5
    done = asyncio.Event()

    async def take(batch: list[Any]) -> None:
        batches.append(batch)
        if sum(len(b) for b in batches) == total:
            done.set()

    bus.subscribe(take, (Raw,), lossless=True, batch=True)
    await bus.start()
    try:
        bus.publish([Raw(n) for n in range(total)])
        await asyncio.wait_for(done.wait(), WAIT)
    finally:
        await bus.stop()
    assert [len(b) for b in batches] == [MAX_BATCH, 5]
    assert [e.n for b in batches for e in b] == list(range(total))


async def test_stop_lets_subscribers_finish_what_they_hold() -> None:
    bus = EventBus()
    got: list[Any] = []

    async def slowish(event: Any) -> None:
        await asyncio.sleep(0)
        got.append(event)

    bus.subscribe(slowish, (Raw,), lossless=True)
    bus.subscribe(slowish, (Derived,))
    await bus.start()
    bus.publish([Raw(1), Derived(2), Raw(3)])
    await bus.stop()
    assert sorted(got, key=lambda e: e.n) == [Raw(1), Derived(2), Raw(3)]
    assert bus.health().state == "down"


async def test_a_subscription_made_after_start_gets_its_worker_at_once() -> None:
    bus = EventBus()
    await bus.start()
    got = asyncio.Event()

    async def late(event: Any) -> None:
        got.set()

    bus.subscribe(late, (Raw,))
    bus.publish([Raw(1)])
    try:
        await asyncio.wait_for(got.wait(), WAIT)
    finally:
        await bus.stop()


async def test_consumers_that_come_and_go_between_events_are_honoured() -> None:
    """Who takes a type is worked out once per type; a consumer added or removed later must
    still be seen at the next event."""
    bus = EventBus()
    first: list[Any] = []
    bus.observe(first.extend, (Raw,))
    bus.publish([Raw(1)])
    later: list[Any] = []
    stop = bus.observe(later.extend, (Raw,))
    unsubscribe = bus.subscribe(lambda event: asyncio.sleep(0), (Raw,))
    bus.publish([Raw(2)])
    (sub,) = bus.subscriptions
    assert later == [Raw(2)] and sub.backlog == 1
    stop()
    unsubscribe()
    bus.publish([Raw(3)])
    assert first == [Raw(1), Raw(2), Raw(3)] and later == [Raw(2)] and sub.backlog == 1
    bus.publish([Derived(4), Raw(5)])  # a batch of mixed types takes the other path
    assert first == [Raw(1), Raw(2), Raw(3), Raw(5)]
