"""The route service: where should this inbound call go, decided within the AGI budget.

`route()` looks the caller up and applies the rules within `[agi] budget_ms`. When the CRM
is slow, down or fails in any way, the caller is not kept waiting: the answer is the default
queue flagged `degraded`, and the late lookup is cancelled in the background. `record()`
queues the decision for `route_decisions` without delaying the caller either: the decision
log (bridge.routing.decision_log) writes what piled up in one INSERT on its own connection,
and `stop()` flushes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import asyncpg

from bridge.clock import MonotonicClock
from bridge.component import Health
from bridge.config import Config
from bridge.crm.directory import CustomerDirectory
from bridge.db.errors import DB_ERRORS
from bridge.errors import CrmUnavailable
from bridge.models import Decision, InboundCall
from bridge.routing import metrics
from bridge.routing.budget import by_deadline, deadline_after, default_route
from bridge.routing.decide import decide
from bridge.routing.decision_log import DecisionLog, DecisionRow, DecisionSink
from bridge.routing.rules import Rule

log = logging.getLogger(__name__)

MAX_TEXT = 256


class RuleSource(Protocol):
    async def current(self) -> Sequence[Rule]: ...


# One statement per batch; WITH ORDINALITY keeps the batch's order, so of two decisions for
# one uniqueid in a batch the first is inserted and the second does nothing.
_INSERT_DECISIONS = """
INSERT INTO route_decisions (uniqueid, linkedid, channel, caller, caller_name, did,
                             customer_id, queue, priority, rule, degraded, recording, decided_at)
SELECT u, l, ch, c, cn, d, cid, q, p, r, dg, rec, at
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
              $7::text[], $8::text[], $9::int[], $10::text[], $11::bool[], $12::text[],
              $13::timestamptz[])
       WITH ORDINALITY AS t(u, l, ch, c, cn, d, cid, q, p, r, dg, rec, at, n)
 ORDER BY n
ON CONFLICT (uniqueid) DO NOTHING
"""


def _text(value: str | None, limit: int = MAX_TEXT) -> str:
    """Text PostgreSQL accepts (no NUL, no lone surrogate - ARI's JSON may escape one),
    capped: one such value would otherwise fail the INSERT of its whole batch."""
    text = (value or "").replace("\x00", "")
    if not text.isascii():
        text = text.encode("utf-8", "ignore").decode("utf-8")
    return text[:limit]


class PostgresDecisionLog:
    """`DecisionSink` writing `route_decisions`, one row per routed channel (uniqueid).

    The first decision for a uniqueid wins and is never overwritten: the call record takes
    its customer, queue and recording path from this row, and a later session naming the same
    uniqueid (a second AGI in the dialplan, a replay, a forged header) must not rewrite them.
    A batch is one INSERT in the batch's order, on a connection this log holds for itself
    (taken from the pool at the first write, given back at `close()` or after an error).
    """

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool
        self._conn: Any = None

    async def write(self, rows: Sequence[DecisionRow]) -> None:
        columns: list[list[Any]] = [[] for _ in range(13)]
        for row in rows:
            call, decision, recording = row.call, row.decision, row.recording
            uniqueid = _text(call.uniqueid, 150)
            if not uniqueid:
                log.debug("decision for %r not recorded: no uniqueid", call.channel)
                continue
            values = (
                uniqueid,
                _text(call.linkedid, 150),
                _text(call.channel),
                _text(call.caller or call.raw_caller),
                _text(call.caller_name),
                _text(call.did),
                _text(decision.customer.id) if decision.customer else None,
                _text(decision.queue),
                decision.priority,
                _text(decision.rule),
                decision.degraded,
                _text(recording, 1024) if recording else None,
                call.at,
            )
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        if not columns[0]:
            return
        try:
            if self._conn is None:
                self._conn = await self._pool.acquire()
            await self._conn.execute(_INSERT_DECISIONS, *columns)
        except DB_ERRORS as exc:
            await self.close(suspect=True)
            raise CrmUnavailable(f"cannot record route decision: {exc}") from exc
        except BaseException:  # a driver state error, a timeout: never reuse the connection
            await self.close(suspect=True)
            raise

    async def close(self, *, suspect: bool = False) -> None:
        """Give the connection back to the pool; a suspect one is closed first, so the pool
        replaces it instead of handing it out again."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if suspect:
                conn.terminate()
            await self._pool.release(conn)
        except (asyncpg.InterfaceError, asyncpg.InternalClientError, OSError):
            # A lost connection was already given back by the pool itself.
            with contextlib.suppress(asyncpg.InterfaceError):
                conn.terminate()


class RouteService:
    """Caller lookup + rules within the time budget; see module docstring."""

    name = "route"

    def __init__(
        self,
        directory: CustomerDirectory,
        rules: RuleSource,
        config: Config,
        *,
        clock: MonotonicClock = time.perf_counter,
        decisions: DecisionSink | None = None,
        max_pending: int = 10_000,
    ) -> None:
        self._directory = directory
        self._rules = rules
        self._config = config
        self._clock = clock
        self._budget_s = config.agi.budget_ms / 1000
        self._tz = ZoneInfo(config.routing.timezone)
        self._decisions = (
            DecisionLog(decisions, max_pending=max_pending) if decisions is not None else None
        )
        self._late: set[asyncio.Future[Decision]] = set()  # lookups abandoned after the budget
        self.degraded_count = 0
        self.dropped_records = 0
        self._observers: list[Callable[[Decision], None]] = []
        self._routed: list[Callable[[InboundCall, Decision], None]] = []
        # Counted on every call: each rule's labelled child looked up once (rules are few).
        self._decision_counts: dict[str, Any] = {}

    def on_decision(self, observer: Callable[[Decision], None]) -> None:
        """`observer(decision)` after every route (the monitor's degraded share)."""
        self._observers.append(observer)

    def on_routed(self, hook: Callable[[InboundCall, Decision], None]) -> None:
        """`hook(call, decision)` when a decision is recorded, the call's uniqueid and linkedid
        known (the pop hub's hand-off: it pops the card without asking the CRM again)."""
        self._routed.append(hook)

    # --- Component -------------------------------------------------------------------

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        if self._decisions is not None:
            await self._decisions.stop(within_s=5.0)
        for task in list(self._late):
            task.cancel()
        await asyncio.gather(*self._late, return_exceptions=True)

    def health(self) -> Health:
        return Health(
            "up",
            required=False,
            detail={
                "pending_records": self.pending(),
                "degraded": self.degraded_count,
                "dropped_records": self.dropped_records,
                "failed_records": 0 if self._decisions is None else self._decisions.not_recorded,
            },
        )

    # --- routing ---------------------------------------------------------------------

    async def route(self, call: InboundCall, deadline: float | None = None) -> Decision:
        """The decision for `call` by `deadline` (event-loop time; a session passes its own,
        by default `budget_ms` from now). Never raises for CRM trouble: the degraded default
        instead."""
        if deadline is None:
            deadline = deadline_after(self._config.agi.budget_ms)
        work = asyncio.ensure_future(self._decide(call))
        try:
            decision = await by_deadline(work, deadline)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # our caller gave up (e.g. the PBX hung up): by_deadline cancelled work
            log.warning("caller lookup was cancelled; default route")
            decision = self._degrade(work)
        except TimeoutError:
            log.warning(
                "CRM did not answer within %d ms; default route", self._config.agi.budget_ms
            )
            decision = self._degrade(work)
        except Exception as exc:  # CRM down, or a bug: the caller must still be routed
            if isinstance(exc, CrmUnavailable):
                log.warning("CRM unavailable; default route: %s", exc)
            else:
                log.exception("routing failed; default route")
            decision = self._degrade(work)
        self._count(decision.rule)
        for observer in self._observers:
            try:
                observer(decision)
            except Exception:
                log.exception("decision observer failed")
        return decision

    def _count(self, rule: str) -> None:
        counter = self._decision_counts.get(rule)
        if counter is None:
            counter = self._decision_counts[rule] = metrics.DECISIONS.labels(rule)
        counter.inc()

    def _degrade(self, work: asyncio.Future[Decision]) -> Decision:
        self.degraded_count += 1
        metrics.DEGRADED.inc()
        if not work.done():
            work.cancel()
            self._late.add(work)
            work.add_done_callback(self._forget_late)
        return default_route(self._config.routing)

    def _forget_late(self, task: asyncio.Future[Decision]) -> None:
        self._late.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not warn about it

    async def _decide(self, call: InboundCall) -> Decision:
        customer = None
        if call.caller:
            started = self._clock()
            try:
                customer = await self._directory.lookup(call.caller)
            finally:
                metrics.LOOKUP_SECONDS.observe(max(0.0, self._clock() - started))
        rules = await self._rules.current()
        routing = self._config.routing
        return decide(
            call,
            customer,
            rules,
            default_queue=routing.default_queue,
            default_priority=routing.default_priority,
            tz=self._tz,
        )

    # --- recording decisions -----------------------------------------------------------

    async def record(self, call: InboundCall, decision: Decision, recording: str | None) -> None:
        """Queue the decision for the decision log; returns at once. Never raises."""
        for hook in self._routed:
            try:
                hook(call, decision)
            except Exception:
                log.exception("route hand-off failed")
        if self._decisions is None:
            return
        if not self._decisions.add(DecisionRow(call, decision, recording)):
            self.dropped_records += 1

    def pending(self) -> int:
        """How many decisions are queued or being written."""
        return 0 if self._decisions is None else self._decisions.pending

    async def drain(self, within_s: float | None = None) -> bool:
        """Wait for queued decisions to be written; True when none is left."""
        if self._decisions is None:
            return True
        return await self._decisions.drain(within_s)
