"""The call-record writer: `CallEnded` (and `Cdr`) in, durable rows in PostgreSQL out.

Durability, in order:
1. `submit(event)` appends the event to the local spool (`bridge.records.spool`: JSONL,
   fsync'd) and only then returns. Whoever feeds the writer (tracker consumer, AMI
   subscriber) treats the return as the acknowledgement: a SIGKILL after it loses nothing.
2. A background task writes spooled entries to PostgreSQL, up to `batch` per transaction
   and in two round trips per batch (`bridge.records.store.write_ended_many`: the calls'
   look-ups, then one statement taking their locks and writing the call_records upsert by
   call_id, its channels, the customers' service_history rows and the batch's Cdrs; the
   outbox rows by trigger), then acks them in the spool. Cdrs ride along with
   the next end event: a call's Cdrs come just before its end, and writing each on its own
   would cost a transaction apiece. So a Cdr is spooled at once (on the event loop when the
   spool is free, no thread hop) but written with the next end event's batch, or after
   `cdr_hold_s` when no end comes; one arriving after its call's end (its uniqueid is one
   of a recent end's) is written at once.
3. While PostgreSQL is unreachable (restart, network cut, backend terminated) the task keeps
   the entries and retries with a jittered backoff capped at `retry_max_s`; `health()` says
   "degraded" with the spool backlog. On start, whatever the spool still holds is written
   first. An entry PostgreSQL rejects as data (not as an outage) is moved to
   `<spool>/rejected.jsonl` and logged, so one bad event cannot block the rest.

Redelivery is harmless: the same end event twice is one row (upsert by call_id) and one
outbox entry (the trigger ignores an update that changes nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from bridge.clock import WallClock, utc_now
from bridge.component import Health
from bridge.db.errors import is_outage
from bridge.errors import ValidationError
from bridge.models import CallEnded
from bridge.pbx_events import CdrRecord
from bridge.records import metrics
from bridge.records.cdr import PbxCdr
from bridge.records.codec import decode_ended, ended_to_dict
from bridge.records.spool import Spool, SpoolEntry
from bridge.records.store import Region, write_ended_many
from bridge.tasks import Backoff, cancel_and_wait

__all__ = ["RecordWriter"]

log = logging.getLogger(__name__)

Committed = Callable[[str, str, datetime], None]  # (kind, key, committed_at)
MAX_ENDED = 20_000  # uniqueids of recent call ends remembered, to tell a late Cdr


class RecordWriter:
    name = "records"

    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        spool: Spool,
        *,
        retry_min_s: float = 0.05,
        retry_max_s: float = 5.0,
        batch: int = 500,
        drain_s: float = 5.0,
        region: Region,
        clock: WallClock = utc_now,
        cdr_hold_s: float = 1.0,
    ) -> None:
        self._pool = pool
        self._spool = spool
        self._region = region  # numbers agents dialled: a call id's own PBX's region
        self._retry = Backoff(retry_min_s, retry_max_s)
        self._batch = batch
        self._drain_s = drain_s
        self._clock = clock
        self._queue: deque[SpoolEntry] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_error: str | None = None
        self._outage = asyncio.Event()
        self._listeners: list[Committed] = []
        self.written = 0
        self._cdr_hold = cdr_hold_s
        self._urgent = False  # an end event (or a late Cdr) waits: write now
        self._held_since: float | None = None  # loop time of the oldest Cdr waiting alone
        self._ended: OrderedDict[str, None] = OrderedDict()  # uniqueids of recent ends
        # What was accepted live, by spool number: written as is, not decoded back from the
        # spooled dict (entries replayed from the file after a restart are decoded).
        self._live: dict[int, CallEnded | PbxCdr] = {}

    # --- component -------------------------------------------------------------------------

    async def start(self) -> None:
        pending = await asyncio.to_thread(self._spool.open)
        self._live.clear()
        if pending:
            log.info("replaying %d spooled call-record entries", len(pending))
        self._queue.extend(pending)
        self._update_gauge()
        self._urgent = bool(pending)
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="record-writer")
        self._kick()

    async def stop(self) -> None:
        """Write what can be written within `drain_s`; the rest stays in the spool."""
        self._stopping = True
        self._wake.set()  # held Cdrs go now
        if self._task is not None:
            if self._queue and self._last_error is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), self._drain_s)
            await cancel_and_wait(self._task)
            self._task = None
        await asyncio.to_thread(self._spool.close)

    def health(self) -> Health:
        detail: dict[str, Any] = {"spool_pending": len(self._queue), "written": self.written}
        if self._task is None:
            return Health("down", required=False, detail=detail)
        if self._last_error is not None:
            detail["error"] = self._last_error
            return Health("degraded", required=False, detail=detail)
        return Health("up", required=False, detail=detail)

    # --- input -------------------------------------------------------------------------------

    def on_committed(self, listener: Committed) -> None:
        """Call `listener(kind, key, committed_at)` after each entry is committed."""
        self._listeners.append(listener)

    async def submit(self, event: CallEnded) -> None:
        """Durably accept one end event; returns once it is fsync'd in the spool."""
        await self._accept([("ended", ended_to_dict(event))], [event])

    async def submit_many(self, events: list[CallEnded]) -> None:
        await self._accept([("ended", ended_to_dict(e)) for e in events], events)

    async def store_cdr(self, cdr: PbxCdr) -> None:
        """Accept one Asterisk Cdr (kept in pbx_cdrs for `crm-bridge sync run`).

        Spooled and flushed to the kernel, so a killed bridge keeps it, but not fsync'd on
        its own: Cdrs are the fallback of the fallback and come five per call; the next
        end event's fsync makes them durable against power loss too, and its transaction
        writes them (see the module docstring)."""
        value = cdr.to_dict()
        await self._accept_cdr(value, PbxCdr.from_dict(value))  # bounded and cleaned

    async def _accept_cdr(self, value: dict[str, Any], cdr: PbxCdr) -> None:
        if not cdr.uniqueid:
            log.debug("Cdr without UniqueID ignored")
            return
        await self._accept([("cdr", value)], [cdr], sync=False)

    async def on_event(self, event: Any) -> None:
        """Subscriber for tracker call events and AMI events alike: keeps what matters here
        (`CallEnded`, `CdrRecord`), ignores the rest."""
        if isinstance(event, CallEnded):
            await self.submit(event)
        elif isinstance(event, CdrRecord):
            cdr = PbxCdr.from_event(event)  # bounded and cleaned already
            await self._accept_cdr(cdr.to_dict(), cdr)

    async def on_events(self, events: list[Any]) -> None:
        """`on_event` for a batch (the event bus's `batch=True` delivery): everything kept
        is spooled with one fsync, so a burst of 20,000 call ends costs a few hundred fsyncs,
        not 20,000. Returns once the batch is durable, like `submit`."""
        items: list[tuple[str, dict[str, Any]]] = []
        live: list[CallEnded | PbxCdr] = []
        sync = False
        for event in events:
            if isinstance(event, CallEnded):
                items.append(("ended", ended_to_dict(event)))
                live.append(event)
                sync = True
            elif isinstance(event, CdrRecord):
                cdr = PbxCdr.from_event(event)
                if cdr.uniqueid:
                    items.append(("cdr", cdr.to_dict()))
                    live.append(cdr)
        if items:
            await self._accept(items, live, sync=sync)

    async def _accept(
        self,
        items: list[tuple[str, dict[str, Any]]],
        live: Sequence[CallEnded | PbxCdr],
        *,
        sync: bool = True,
    ) -> None:
        """Spool `items` (the dicts of the `live` objects, in order) and queue them."""
        # Without fsync, on the loop unless another append's fsync holds the spool.
        entries = None if sync else self._spool.try_append_many(items)
        if entries is None:
            entries = await asyncio.to_thread(self._spool.append_many, items, sync=sync)
        self._queue.extend(entries)
        for entry, value in zip(entries, live, strict=True):
            self._live[entry.n] = value
        self._update_gauge()
        if self._ends_a_call(items):
            self._urgent = True
        elif self._held_since is None:
            self._held_since = asyncio.get_running_loop().time()
        else:
            return  # the loop's timer already runs for an older held Cdr
        self._kick()

    def _ends_a_call(self, items: list[tuple[str, dict[str, Any]]]) -> bool:
        """True when `items` hold an end event, or a Cdr of a call that already ended."""
        urgent = False
        for kind, value in items:
            if kind == "ended":
                urgent = True
                summary = value.get("summary")
                uniqueids = summary.get("uniqueids") if isinstance(summary, dict) else None
                for uniqueid in uniqueids if isinstance(uniqueids, list) else ():
                    self._ended[str(uniqueid)] = None
                while len(self._ended) > MAX_ENDED:
                    self._ended.popitem(last=False)
            elif value.get("uniqueid") in self._ended:
                urgent = True
        return urgent

    def _due(self) -> bool:
        if self._urgent or self._stopping or self._held_since is None:
            return True
        return asyncio.get_running_loop().time() >= self._held_since + self._cdr_hold

    async def wait_idle(self) -> None:
        """Until every accepted entry is committed (tests, benchmarks, shutdown); held Cdrs
        are written now."""
        if self._queue:
            self._urgent = True
            self._kick()
        while self._queue:
            self._idle.clear()
            await self._idle.wait()

    async def wait_outage(self) -> None:
        """Until a write has failed because PostgreSQL is unreachable (tests)."""
        await self._outage.wait()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def oldest_pending_end(self) -> datetime | None:
        """When the oldest call end not yet committed happened (the monitor's commit lag)."""
        for entry in self._queue:  # in arrival order: the first end is the oldest one
            if entry.kind == "ended":
                try:
                    return datetime.fromisoformat(entry.value["summary"]["ended_at"])
                except (KeyError, TypeError, ValueError):
                    continue
        return None

    # --- the writing loop ------------------------------------------------------------------

    def _kick(self) -> None:
        if self._queue:
            self._idle.clear()
        self._wake.set()

    def _update_gauge(self) -> None:
        metrics.SPOOL_PENDING.set(len(self._queue))

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._urgent = False
                self._held_since = None
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            if not self._due():
                assert self._held_since is not None
                self._wake.clear()
                left = self._held_since + self._cdr_hold - asyncio.get_running_loop().time()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await self._wake.wait()
                continue
            if len(self._queue) <= self._batch:
                # This write takes everything that made it due: Cdrs coming meanwhile wait
                # for their own end (or the hold) instead of a transaction of their own.
                self._urgent = False
                self._held_since = None
            try:
                await self._write_some()
            except Exception as exc:
                if not is_outage(exc):
                    log.exception("record writer failed unexpectedly; retrying")
                self._last_error = f"{type(exc).__name__}: {exc}"[:300]
                self._outage.set()
                metrics.RECORD_WRITE_ERRORS.labels("outage").inc()
                log.warning(
                    "database unavailable, %d records kept in spool: %s",
                    len(self._queue),
                    self._last_error,
                )
                await asyncio.sleep(self._retry.next())
                continue
            self._retry.reset()
            self._last_error = None
            self._outage.clear()

    async def _write_some(self) -> None:
        """Write up to `batch` spooled entries in one statement (`write_ended_many`): one WAL
        flush and two round trips for many records. Should PostgreSQL reject one as data,
        the batch is redone in a transaction with a savepoint per entry, so that one is set
        aside without losing the others. An outage rolls the batch back; it is retried whole
        (the writes are idempotent)."""
        batch = list(itertools.islice(self._queue, self._batch))
        rejected: dict[int, BaseException] = {}
        async with self._pool.acquire() as conn:
            try:
                await self._apply(conn, batch)
            except Exception as exc:
                if is_outage(exc):
                    raise
                async with conn.transaction():
                    for entry in batch:
                        try:
                            async with conn.transaction():
                                await self._apply(conn, [entry])
                        except Exception as exc:
                            if is_outage(exc):
                                raise
                            rejected[entry.n] = exc
        for entry in batch:
            self._queue.popleft()
            self._live.pop(entry.n, None)
            if entry.n in rejected:
                await self._reject(entry, rejected[entry.n])
            else:
                self._committed(entry)
        numbers = [e.n for e in batch]
        if not self._spool.try_ack(numbers):  # on the loop unless busy or compacting
            await asyncio.to_thread(self._spool.ack, numbers)
        self._update_gauge()

    async def _apply(self, conn: Any, entries: list[SpoolEntry]) -> None:
        """Entries in spool order: a call's end before a later end of the same call."""
        ended: list[CallEnded] = []
        cdrs: list[PbxCdr] = []
        for entry in entries:
            value = self._live.get(entry.n)
            if entry.kind == "ended":
                ended.append(value if isinstance(value, CallEnded) else decode_ended(entry.value))
            else:
                cdrs.append(value if isinstance(value, PbxCdr) else PbxCdr.from_dict(entry.value))
        await write_ended_many(conn, ended, region=self._region, cdrs=cdrs)

    def _committed(self, entry: SpoolEntry) -> None:
        now = self._clock()
        if entry.kind == "ended":
            self.written += 1
            metrics.RECORDS_WRITTEN.inc()
            key = str(entry.value.get("call_id", ""))
            with contextlib.suppress(ValueError, TypeError):
                ended = datetime.fromisoformat(entry.value["summary"]["ended_at"])
                metrics.RECORD_WRITE_LAG.observe(max(0.0, (now - ended).total_seconds()))
        else:
            metrics.CDRS_STORED.inc()
            key = str(entry.value.get("uniqueid", ""))
        for listener in self._listeners:
            try:
                listener(entry.kind, key, now)
            except Exception:
                log.exception("record listener failed")

    async def _reject(self, entry: SpoolEntry, exc: BaseException) -> None:
        reason = "invalid" if isinstance(exc, ValidationError | KeyError | TypeError) else "refused"
        metrics.RECORD_WRITE_ERRORS.labels(reason).inc()
        log.error("spool entry %d (%s) rejected: %s", entry.n, entry.kind, exc)
        line = json.dumps(
            {"n": entry.n, "k": entry.kind, "v": entry.value, "error": str(exc)[:500]},
            ensure_ascii=True,
        )

        def write() -> None:
            with open(self._spool.directory / "rejected.jsonl", "a", encoding="ascii") as f:
                f.write(line + "\n")

        await asyncio.to_thread(write)
