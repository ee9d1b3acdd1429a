"""The routing budget: one deadline per call, and the one decision a call gets past it.

A call's deadline is fixed once, when its session starts (`deadline_after`), as event-loop
time; everything the session waits for before setting its variables (the router, the
linkedid) is bounded by that same instant, never by a fresh timeout of its own. `by_deadline`
is the single place that waits for a decision against it: AGI, ARI and the route service
use it. Past the deadline the caller gets `default_route`: the default queue, degraded.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TypeVar

from bridge.config import RoutingConfig
from bridge.models import Decision

log = logging.getLogger(__name__)

T = TypeVar("T")


def default_route(routing: RoutingConfig) -> Decision:
    """The decision for a call the router could not answer in time: `BRIDGE_DEGRADED=1`."""
    return Decision(routing.default_queue, routing.default_priority, "default", None, True)


def deadline_after(budget_ms: int) -> float:
    """The event-loop time `budget_ms` from now."""
    return asyncio.get_running_loop().time() + budget_ms / 1000


async def by_deadline(work: asyncio.Future[T], deadline: float) -> T:
    """`work`'s result if it is ready by `deadline` (event-loop time), else TimeoutError.

    One timer at exactly `deadline`: callers that share a deadline wake in the same loop
    iteration. Past it, `work` is left running for the caller to cancel or let finish (an
    interrupted database query may take a while to unwind, and the caller must not wait for
    that). If the caller itself is cancelled, so is `work`. `work`'s exceptions are raised.
    """
    if not work.done():
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()

        def wake(_: object = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        timer = loop.call_at(deadline, wake)
        work.add_done_callback(wake)
        try:
            await waiter
        except asyncio.CancelledError:
            work.cancel()
            raise
        finally:
            timer.cancel()
            work.remove_done_callback(wake)
    if not work.done():
        raise TimeoutError
    return work.result()


def abandon(work: asyncio.Future[T]) -> None:
    """Give up on `work` past the deadline: cancel it on the next loop iteration and retrieve
    its outcome. A router that honours the same deadline is finishing its own fallback in
    this iteration (its accounting must not be cut short); one with a bug is cut off."""
    if work.done():
        return
    asyncio.get_running_loop().call_soon(work.cancel)
    work.add_done_callback(_retrieve)


def _retrieve(work: asyncio.Future[T]) -> None:
    if not work.cancelled() and work.exception() is not None:
        log.info("routing abandoned at the deadline failed: %s", work.exception())
