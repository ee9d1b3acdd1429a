"""Rows written off the hot path, in batches: `add()` never waits; one task writes what piled up.

Used where a live path (pops, call events) must note something in the database without
waiting on it: who was rung for a call, who saw which customer card. A write that fails is
logged with its row count and the rows are dropped: these are secondary records, and the
bound (`max_rows`) keeps a database outage from growing memory without end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

__all__ = ["BatchWriter"]

Row = TypeVar("Row")


class BatchWriter(Generic[Row]):
    def __init__(
        self,
        write: Callable[[Sequence[Row]], Awaitable[None]],
        *,
        what: str,
        batch: int = 1000,
        max_rows: int = 100_000,
        tick_s: float = 0.0,
    ) -> None:
        self._write = write
        self._what = what
        self._batch = batch
        self._tick_s = tick_s  # how long the first row of a batch waits for others
        self._max_rows = max_rows
        self._pending: list[Row] = []
        self._writing = 0  # rows of the batch being written
        self._task: asyncio.Task[None] | None = None
        self._lost = 0

    @property
    def pending(self) -> int:
        """Rows added and not yet written (or failed)."""
        return len(self._pending) + self._writing

    def add(self, row: Row) -> bool:
        """Queue `row`; False when it was dropped because `max_rows` are already waiting."""
        if len(self._pending) >= self._max_rows:
            self._lost += 1
            return False
        self._pending.append(row)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._flush())
        return True

    async def drain(self, timeout_s: float | None = None) -> None:
        """Wait until everything added so far is written (or failed)."""
        while self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            if timeout_s is not None:
                return

    async def _flush(self) -> None:
        if self._tick_s > 0:
            await asyncio.sleep(self._tick_s)  # let the rows of this tick join the batch
        while self._pending:
            rows = self._pending[: self._batch]
            del self._pending[: self._batch]
            self._writing = len(rows)
            try:
                await self._write(rows)
            except Exception as exc:
                log.warning("cannot record %d %s: %s", len(rows), self._what, exc)
            finally:
                self._writing = 0
        if self._lost:
            log.warning("dropped %d %s: the database was behind", self._lost, self._what)
            self._lost = 0
