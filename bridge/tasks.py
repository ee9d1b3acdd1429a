"""Stopping background tasks."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel the tasks and return once every one has finished.

    Unlike `task.cancel()` then `await task` under `suppress(CancelledError)`, this never
    swallows a cancellation of the *caller*: waiting with `asyncio.wait` does not raise the
    tasks' CancelledError, so one that reaches us is ours and propagates. A task that had
    already failed with another exception re-raises it here, as awaiting it would.
    """
    live = [task for task in tasks if task is not None]
    for task in live:
        task.cancel()
    if live:
        await asyncio.wait(live)
    for task in live:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
