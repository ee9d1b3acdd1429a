"""The route decision log: decisions queued by the router, written in batches off the call.

`DecisionLog.add()` never waits. One task writes what piled up, in one multi-row INSERT per
tick (`TICK_S`; `DecisionSink.write`), so calls cost a few statements, not one per call,
and the writes start only after the session that made them has ended and never queue for a
connection ahead of caller lookups (the Postgres sink holds a connection of its own).

A batch that fails is tried once more (the sink takes a fresh connection); if that fails too
its decisions are logged by uniqueid as not recorded and counted (`not_recorded`, shown by
the route service's health as `failed_records`), as are decisions refused
because `max_pending` are already waiting (a database down for long must not grow memory
without end). `stop()` flushes what is queued before the sink closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bridge.batching import BatchWriter
from bridge.models import Decision, InboundCall
from bridge.routing import metrics

log = logging.getLogger(__name__)

WRITE_TIMEOUT_S = 10.0
TICK_S = 0.02  # decisions of one tick share an INSERT: a few per statement at 300 calls/s


@dataclass(frozen=True, slots=True)
class DecisionRow:
    call: InboundCall
    decision: Decision
    recording: str | None


class DecisionSink(Protocol):
    async def write(self, rows: Sequence[DecisionRow]) -> None:
        """Persist a batch in order, the first decision for a uniqueid winning; may raise."""
        ...

    async def close(self) -> None: ...


class DecisionLog:
    """Batches decisions into `sink` (see module docstring)."""

    def __init__(
        self, sink: DecisionSink, *, max_pending: int = 10_000, tick_s: float = TICK_S
    ) -> None:
        self._sink = sink
        self._rows: BatchWriter[DecisionRow] = BatchWriter(
            self._write, what="route decisions", max_rows=max_pending, tick_s=tick_s
        )
        self.not_recorded = 0  # decisions whose batch failed twice (for the health detail)

    @property
    def pending(self) -> int:
        return self._rows.pending

    def add(self, row: DecisionRow) -> bool:
        """Queue one decision; False (logged, counted) when it had to be dropped."""
        if self._rows.add(row):
            return True
        metrics.RECORD_ERRORS.inc()
        log.error("route decision for %r dropped: too many writes pending", row.call.uniqueid)
        return False

    async def drain(self, within_s: float | None = None) -> bool:
        """Wait for what is queued; True when nothing is left."""
        await self._rows.drain(within_s)
        return self._rows.pending == 0

    async def stop(self, within_s: float = 5.0) -> None:
        """Flush what is queued (for up to `within_s`), then close the sink."""
        await self.drain(within_s)
        if self._rows.pending:
            log.error("%d route decisions not recorded at shutdown", self._rows.pending)
        await self._sink.close()

    async def _write(self, rows: Sequence[DecisionRow]) -> None:
        for attempt in (1, 2):
            try:
                async with asyncio.timeout(WRITE_TIMEOUT_S):
                    await self._sink.write(rows)
                return
            except Exception as exc:
                if attempt == 1:
                    log.info("route decisions not written (%s); trying once more", exc)
                    continue
                metrics.RECORD_ERRORS.inc(len(rows))
                self.not_recorded += len(rows)
                ids = ", ".join(repr(row.call.uniqueid) for row in rows[:10])
                more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
                log.error("route decisions for %s%s not recorded: %s", ids, more, exc)
