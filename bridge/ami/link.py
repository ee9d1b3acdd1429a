"""The live AMI link: a thin asyncio adapter around the sans-I/O core.

It connects, logs in (the secret is never logged), lists what the PBX has up
(`CoreShowChannels`, `QueueStatus`), then reads events, stamps them with their arrival time,
decodes them and publishes them on an `EventBus`. It knows nothing of who consumes them.

Why not panoramisk: its `Manager` neither escapes CR/LF in action values nor checks the Pong
of its own ping, and its reconnect cannot resync before events flow again. The protocol core
here is ~200 lines and is the same code the trace replays test, so we own the client.

Liveness: every `keepalive_s` a `Ping` must be answered by `Response: Success` + `Ping: Pong`
within `pong_timeout_s`; otherwise the link is declared dead (this catches half-open
connections where the socket stays up but Asterisk no longer answers) and reconnected with a
jittered exponential backoff that resets after a successful login and resync. Responses share
the stream with events, so during a burst the Pong sits behind megabytes of events: a late
Pong while bytes still arrive (or while we hold the read, below) is excused, only silence
kills the link; reconnecting mid-burst would lose everything the socket held.

Backpressure: the link publishes every decoded event on an `EventBus` (the tracker feed,
the record writer, ... take them from there). Before each socket read it waits while a
lossless subscriber of the bus (the call-record writer) is over its bound, so a burst waits
in the kernel's TCP buffers and then in Asterisk's own per-session queue, never in ours. One
warning per pause episode; `crm_bridge_ami_backpressure_pauses_total` counts them. While
paused a missing Pong is not a dead link (we are the ones not reading), so keepalive waits
instead of reconnecting.

Resync: at each login the `CoreShowChannels` and `QueueStatus` listings are published as one
`PbxSnapshot`; events that arrived meanwhile are held back and published after it, one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bridge.ami import metrics
from bridge.ami.decode import WANTED_EVENTS, decode_event
from bridge.ami.protocol import AmiParser, Frame, encode_action
from bridge.bus import EventBus
from bridge.clock import WallClock, utc_now
from bridge.component import Health, State
from bridge.config import AmiConfig
from bridge.errors import AmiProtocolError, AuthError, LinkDown
from bridge.pbx_events import ChannelListed, PbxEvent, PbxSnapshot, QueueEntryListed
from bridge.tasks import Backoff, cancel_and_wait

__all__ = ["AmiLink", "LinkState"]

log = logging.getLogger(__name__)

MAX_RESYNC_BUFFER = 100_000  # events held back while a resync listing is in flight
BACKOFF_BASE_S = 0.5


class LinkState(enum.Enum):
    DOWN = "down"
    CONNECTING = "connecting"
    CONNECTED = "connected"


class _Refused(Exception):
    """A listing action answered `Response: Error` (no permission, module not loaded)."""


@dataclass
class _Pending:
    """An action waiting for its response (and, for listings, its events)."""

    future: asyncio.Future[list[Frame]]
    complete_event: str | None  # e.g. CoreShowChannelsComplete; None: the response is all
    frames: list[Frame] = field(default_factory=list)


class AmiLink:
    """Component `ami-link`: the AMI connection, publishing the PBX's events on `events`
    (a bus of its own when none is given: a link used for actions only)."""

    name = "ami-link"

    def __init__(
        self,
        config: AmiConfig,
        events: EventBus | None = None,
        *,
        clock: WallClock = utc_now,
        pong_timeout_s: float | None = None,
        connect_timeout_s: float = 5.0,
        action_timeout_s: float = 10.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.events = events if events is not None else EventBus()
        self._clock = clock
        self._pong_timeout = pong_timeout_s if pong_timeout_s is not None else config.keepalive_s
        self._connect_timeout = connect_timeout_s
        self._action_timeout = action_timeout_s
        self._reconnect_backoff = Backoff(BACKOFF_BASE_S, config.reconnect_max_s, rng=rng)
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._writer: asyncio.StreamWriter | None = None
        self._state = LinkState.DOWN
        self._started = False
        self._ever_connected = False
        self._resync_buffer: list[PbxEvent] | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._connected_once_this_round = False
        self._changed = asyncio.Condition()
        self.last_event_at: datetime | None = None
        self.reconnects = 0
        self.sessions = 0  # successful login + resync count
        self.pauses = 0  # backpressure episodes (reads held for a lossless subscriber)
        self.excused_pongs = 0  # late Pongs behind a burst, not taken for a dead link
        self._last_read = 0.0  # monotonic time of the last bytes from Asterisk
        self._paused = False
        self._set_state(LinkState.DOWN)

    # --- component API -------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting in the background; returns at once (the link retries forever)."""
        if self._started:
            return
        self._started = True
        self._stopping.clear()
        self._run_task = asyncio.create_task(self._run(), name="ami-link")

    async def stop(self) -> None:
        """Close the link; nothing is published after this returns."""
        if not self._started:
            return
        self._stopping.set()
        await cancel_and_wait(self._run_task)
        self._run_task = None
        self._started = False
        self._set_state(LinkState.DOWN)

    def health(self) -> Health:
        state: State
        if self._state is LinkState.CONNECTED:
            state = "up"
        elif self._started and not self._ever_connected:
            state = "starting"
        else:
            state = "down"
        return Health(
            state=state,
            required=True,
            detail={
                "link": self._state.value,
                "host": self.config.host,
                "port": self.config.port,
                "last_event_at": self.last_event_at.isoformat() if self.last_event_at else None,
                "reconnects": self.reconnects,
            },
        )

    @property
    def state(self) -> LinkState:
        return self._state

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds, checked at every state change of the link
        (sessions, backpressure pauses, excused Pongs): tests and tools, never polling."""
        async with self._changed:
            await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def connected(self, sessions: int = 1) -> None:
        """Wait until the link has logged in and resynced `sessions` times and is up."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: self.sessions >= sessions and self._state is LinkState.CONNECTED
            )

    # --- backpressure ----------------------------------------------------------------------

    async def _wait_for_room(self) -> None:
        """Backpressure: hold the socket read while a lossless subscriber is full."""
        while (sub := self.events.full_subscriber()) is not None:
            self._paused = True
            self.pauses += 1
            metrics.BACKPRESSURE_PAUSES.inc()
            await self._notify()
            started = time.monotonic()
            log.warning(
                "subscriber %r is %d events behind: AMI reads paused until it catches up",
                sub.callback,
                sub.backlog,
            )
            try:
                await sub.room()
            finally:
                self._paused = False
            log.info("AMI reads resumed after %.1fs", time.monotonic() - started)

    # --- actions -----------------------------------------------------------------------------

    async def action(self, name: str, fields: Mapping[str, str | int] | None = None) -> Frame:
        """Send one action and return its response frame. `LinkDown` when not connected."""
        frames = await self._request(name, dict(fields or {}), None)
        return frames[0]

    async def listing(
        self, name: str, fields: Mapping[str, str | int], complete_event: str
    ) -> list[Frame]:
        """Send one list action (e.g. `QueueStatus`): its response, then every listed event
        up to `complete_event`. `LinkDown` when not connected."""
        return await self._request(name, dict(fields), complete_event)

    async def _request(
        self, name: str, fields: dict[str, str | int], complete_event: str | None
    ) -> list[Frame]:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise LinkDown("the AMI link is not connected")
        action_id = f"crm-bridge-{next(self._ids)}"
        data = encode_action(name, {**fields, "ActionID": action_id})  # refuses CR/LF/NUL
        future: asyncio.Future[list[Frame]] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = _Pending(future, complete_event)
        try:
            writer.write(data)
            await writer.drain()
            return await asyncio.wait_for(future, timeout=self._action_timeout)
        except (ConnectionError, OSError) as exc:
            raise LinkDown(f"AMI connection lost during {name}: {exc}") from exc
        except TimeoutError as exc:
            raise LinkDown(f"AMI did not answer {name} within {self._action_timeout}s") from exc
        finally:
            self._pending.pop(action_id, None)

    # --- the connection loop -------------------------------------------------------------

    def _set_state(self, state: LinkState) -> None:
        if state is not getattr(self, "_state", None):
            log.info("AMI link %s:%s %s", self.config.host, self.config.port, state.value)
        self._state = state
        for s in LinkState:
            metrics.LINK_STATE.labels(s.value).set(1 if s is state else 0)

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            if self.sessions or attempt:
                self.reconnects += 1
                metrics.RECONNECTS.inc()
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except AuthError as exc:
                log.error("AMI login refused for user %r: %s", self.config.username, exc)
            except (OSError, LinkDown, AmiProtocolError, TimeoutError) as exc:
                log.warning("AMI link lost: %s", exc or type(exc).__name__)
            finally:
                self._close()
            if self._connected_once_this_round:
                attempt = 0
            attempt += 1
            delay = self._reconnect_backoff.delay(attempt)  # attempt 1 waits up to 1 s
            log.info("AMI reconnect in %.1fs", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    def _close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(LinkDown("AMI connection closed"))
        self._pending.clear()
        self._resync_buffer = None
        self._set_state(LinkState.DOWN)

    async def _session(self) -> None:
        self._connected_once_this_round = False
        self._set_state(LinkState.CONNECTING)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.config.host, self.config.port),
            timeout=self._connect_timeout,
        )
        self._writer = writer
        banner: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        reader_task = asyncio.create_task(self._read(reader, banner), name="ami-reader")
        try:
            first: set[asyncio.Future[Any]] = {banner, reader_task}
            await asyncio.wait(
                first,
                timeout=self._connect_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not banner.done() or banner.exception() is not None:
                raise LinkDown("no AMI banner from the peer (is this an Asterisk manager port?)")
            await self._login()
            await self._resync()
            self._connected_once_this_round = True
            self._ever_connected = True
            self.sessions += 1
            self._set_state(LinkState.CONNECTED)
            async with self._changed:
                self._changed.notify_all()
            keepalive = asyncio.create_task(self._keepalive(), name="ami-keepalive")
            try:
                done, _ = await asyncio.wait(
                    {reader_task, keepalive}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    task.result()  # raise what ended the session
                raise LinkDown("AMI connection closed by the peer")
            finally:
                keepalive.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await keepalive
        finally:
            if reader_task.done() and not reader_task.cancelled():
                reader_task.exception()  # retrieved: reported through the session's result
            reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader_task
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), timeout=1.0)

    async def _login(self) -> None:
        frames = await self._request(
            "Login",
            {"Username": self.config.username, "Secret": self.config.secret, "Events": "on"},
            None,
        )
        response = frames[0]
        if (response.response or "").lower() != "success":
            raise AuthError(response.get("Message") or "authentication failed")
        log.info("AMI logged in as %r", self.config.username)

    async def _resync(self) -> None:
        """Replace trust in old state by what Asterisk lists now; events that arrive during
        the listing are held back and applied after it."""
        self._resync_buffer = []
        complete = True
        try:
            listing = await self._request("CoreShowChannels", {}, "CoreShowChannelsComplete")
        except _Refused as exc:
            # Asterisk 22 answers "Permission denied" to a user with no write class (checked
            # live on the lab with read = call,agent,cdr): nothing is known, not "nothing up".
            log.warning(
                "AMI CoreShowChannels refused (%s): calls in progress are kept as they were;"
                " give the AMI user write = reporting so a reconnect can tell which ended",
                exc,
            )
            listing, complete = [], False
        try:
            queues = await self._request("QueueStatus", {}, "QueueStatusComplete")
        except _Refused as exc:
            log.warning("AMI QueueStatus refused: %s", exc)
            queues = []
        now = self._clock()
        channels = [e for f in listing if isinstance(e := decode_event(f, now), ChannelListed)]
        entries = [e for f in queues if isinstance(e := decode_event(f, now), QueueEntryListed)]
        self.events.publish([PbxSnapshot(now, tuple(channels), tuple(entries), complete)])
        held, self._resync_buffer = self._resync_buffer or [], None
        for event in held:  # one batch per event, as live: observers see the state after each
            self.events.publish([event])
        log.info("AMI resync: %d channels, %d queue entries", len(channels), len(entries))

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.config.keepalive_s)
            started = time.monotonic()
            pauses = self.pauses
            try:
                frames = await asyncio.wait_for(
                    self._request("Ping", {}, None), timeout=self._pong_timeout
                )
            except (TimeoutError, LinkDown) as exc:
                writer = self._writer
                alive = writer is not None and not writer.is_closing()
                # A Pong queued behind a burst still to be read (our backpressure) or parsed
                # (bytes keep arriving) is late, not lost: only silence is a dead link.
                busy = self._paused or self.pauses != pauses or self._last_read > started
                if alive and busy:
                    self.excused_pongs += 1
                    await self._notify()
                    continue
                if isinstance(exc, LinkDown):
                    raise
                raise LinkDown(f"no Pong within {self._pong_timeout}s: link is dead") from exc
            pong = frames[0]
            if (pong.response or "").lower() != "success" or (pong.get("Ping") or "") != "Pong":
                raise LinkDown(f"unexpected answer to Ping: {pong!r}")
            metrics.PONG_LATENCY.observe(time.monotonic() - started)

    async def _read(self, reader: asyncio.StreamReader, banner: asyncio.Future[str]) -> None:
        parser = AmiParser(events=WANTED_EVENTS)
        try:
            await self._read_frames(reader, parser, banner)
        finally:
            if not banner.done():
                banner.set_exception(LinkDown("AMI closed before its banner"))
            for pending in self._pending.values():
                if not pending.future.done():
                    pending.future.set_exception(LinkDown("AMI connection closed"))

    async def _read_frames(
        self, reader: asyncio.StreamReader, parser: AmiParser, banner: asyncio.Future[str]
    ) -> None:
        while True:
            await self._wait_for_room()
            data = await reader.read(65536)
            if not data:
                return
            self._last_read = time.monotonic()
            skipped = parser.frames_skipped
            try:
                frames = parser.feed(data)
            except AmiProtocolError as exc:
                metrics.PROTOCOL_ERRORS.inc()
                log.warning("AMI protocol error (frame skipped): %s", exc)
                frames = getattr(exc, "frames", [])
            if skipped != parser.frames_skipped:  # events nobody here reads: counted, not parsed
                metrics.EVENTS.inc(parser.frames_skipped - skipped)
                self.last_event_at = self._clock()
            for frame in frames:
                if frame.banner is not None:
                    if not banner.done():
                        banner.set_result(frame.banner)
                    continue
                self._on_frame(frame)

    def _on_frame(self, frame: Frame) -> None:
        # No action waiting: no ActionID lookup (a miss builds the frame's case-folded index).
        action_id = frame.action_id if self._pending else None
        pending = self._pending.get(action_id) if action_id else None
        if pending is not None and not pending.future.done():
            if frame.response is not None:
                if pending.complete_event is None:
                    pending.future.set_result([frame])  # Success or Error: the caller decides
                elif frame.response.lower() == "error":
                    # e.g. QueueStatus without app_queue, or no write class: not a dead link.
                    pending.future.set_exception(_Refused(frame.get("Message") or "refused"))
                return
            if frame.event == pending.complete_event:
                pending.future.set_result(pending.frames)
            else:
                pending.frames.append(frame)
            return
        if frame.event is None:
            return  # a response nobody waits for (any more)
        metrics.EVENTS.inc()
        at = self._clock()
        self.last_event_at = at
        event = decode_event(frame, at)
        if event is None:
            return
        if self._resync_buffer is not None:
            if len(self._resync_buffer) < MAX_RESYNC_BUFFER:
                self._resync_buffer.append(event)
            return
        self.events.publish([event])
