"""ARI (Stasis) mode: route each inbound call the dialplan hands to `Stasis(<app>)`.

For every `StasisStart` (no arguments, our app) the component builds an `InboundCall`,
asks the router within `[agi] budget_ms`, sets the CONTRACT `BRIDGE_*` variables on the
channel and `continue`s it in the dialplan, which then reads `BRIDGE_QUEUE`.

A caller is never left parked:
- a router that is late or fails gives the default route with `BRIDGE_DEGRADED=1`;
- a variable that cannot be set does not stop the `continue`;
- a `continue` that fails on a link error is retried, and a channel still parked when the
  websocket comes back is found by `GET /channels` (resync after every connect);
- 404/409 on `continue` means the caller hung up meanwhile: logged, nothing more to do.

One bridge instance owns the ARI app. Asterisk delivers an app's events to ONE websocket: a
second connection with the same app name takes the app over and the first receives
`ApplicationReplaced`. We then report `degraded` (health detail says why) and do not fight
back; run a single instance per `[ari] app`, or give each instance its own app name and
dialplan entry.

Each call is a task; at most `max_concurrent` are deciding at once (further ones wait for a
slot inside their own budget, then fall back to the default route). The number of parked
channels itself is bounded by the PBX.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any, Protocol

from bridge.ari import metrics
from bridge.ari.client import AriClient
from bridge.ari.protocol import (
    ApplicationReplaced,
    AriChannel,
    ChannelDestroyed,
    OtherEvent,
    StasisEnd,
    StasisStart,
    decode_event,
    in_app,
)
from bridge.clock import WallClock, utc_now
from bridge.component import Health
from bridge.config import Config
from bridge.crm.phones import to_e164
from bridge.errors import AriProtocolError, AuthError, BridgeError, LinkDown, NotFound
from bridge.models import Decision, InboundCall
from bridge.routing.budget import abandon, by_deadline, default_route
from bridge.routing.variables import contract_variables, plain_text, recording_name
from bridge.tasks import Backoff, equal_jitter

__all__ = ["AriApp", "AriLink", "EventSource", "Router"]

log = logging.getLogger(__name__)

# A failed continue is retried soon (0.1 s, 0.2 s, ...): the caller is parked meanwhile.
_CONTINUE_BACKOFF = Backoff(0.1, 1.0)  # only delay(n) is used: it holds no state
DONE_MEMORY = 10_000  # channel ids remembered as finished, so resync never handles one twice


class Router(Protocol):
    """What the app needs of routing (`bridge.routing.service.RouteService` fits)."""

    async def route(self, call: InboundCall, deadline: float | None = None) -> Decision: ...

    async def record(
        self, call: InboundCall, decision: Decision, recording: str | None
    ) -> None: ...


class EventSource(Protocol):
    async def receive(self) -> str | bytes: ...


class AriLink(Protocol):
    """What the app needs of ARI (`bridge.ari.client.AriClient` fits)."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def event_stream(self) -> AbstractAsyncContextManager[EventSource]: ...

    async def set_variable(self, channel_id: str, name: str, value: str) -> None: ...

    async def continue_in_dialplan(self, channel_id: str) -> None: ...

    async def get_variable(self, channel_id: str, name: str) -> str: ...

    async def list_channels(self) -> list[AriChannel]: ...


class AriApp:
    """Component: the Stasis app that routes inbound calls."""

    name = "ari"

    def __init__(
        self,
        config: Config,
        router: Router,
        *,
        client: AriLink | None = None,
        max_concurrent: int = 256,
        backoff_initial_s: float = 0.5,
        continue_attempts: int = 3,
        retry_parked_s: float = 5.0,
        clock: WallClock = utc_now,
    ) -> None:
        self._config = config
        self._router = router
        self._client: AriLink = client if client is not None else AriClient(config.ari)
        self._app = config.ari.app
        self._budget_s = config.agi.budget_ms / 1000
        self._slots = asyncio.Semaphore(max_concurrent)
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = max(config.ari.reconnect_max_s, backoff_initial_s)
        self._continue_attempts = max(1, continue_attempts)
        self._retry_parked_s = retry_parked_s
        self._clock = clock
        self._active: dict[str, asyncio.Task[None]] = {}
        self._done: OrderedDict[str, None] = OrderedDict()
        self._helpers: set[asyncio.Task[None]] = set()
        self._resync_task: asyncio.Task[None] | None = None
        self._resync_again = False
        self._runner: asyncio.Task[None] | None = None
        self._connected = False
        self._changed = asyncio.Event()  # replaced by a fresh one at each health change
        self._started = False
        self._replaced_at: str | None = None
        self._last_error: str | None = None
        self._continued = 0
        self._connections = 0

    # --- component --------------------------------------------------------------------

    async def start(self) -> None:
        """Open the REST session and start the connect loop; returns at once."""
        if self._runner is not None:
            return
        await self._client.open()
        self._started = True
        self._runner = asyncio.create_task(self._run(), name="ari-events")

    async def stop(self) -> None:
        """Stop reading events; let calls in hand be continued; then close."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        for helper in list(self._helpers):
            helper.cancel()
        await asyncio.gather(*self._helpers, return_exceptions=True)
        pending = list(self._active.values())
        if pending:
            # Each task is bounded by the budget and the REST timeouts; give them that.
            _, late = await asyncio.wait(pending, timeout=self._budget_s + 15)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._set_connected(False)
        self._started = False
        await self._client.close()

    def health(self) -> Health:
        detail: dict[str, Any] = {
            "app": self._app,
            "connected": self._connected,
            "in_flight": len(self._active),
            "continued": self._continued,
            "connections": self._connections,
        }
        if self._last_error:
            detail["last_error"] = self._last_error
        if self._replaced_at is not None:
            detail["replaced_at"] = self._replaced_at
            detail["reason"] = (
                f"another connection took over ARI app {self._app!r}; this instance no longer"
                " receives its calls. Run ONE bridge per [ari] app."
            )
            return Health("degraded", detail=detail)
        if self._connected:
            return Health("up", detail=detail)
        if self._started and self._connections == 0 and self._last_error is None:
            return Health("starting", detail=detail)
        return Health("down", detail=detail)

    # --- introspection for tests and the admin API ------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def in_flight(self) -> int:
        return len(self._active)

    async def wait_health(self, predicate: Callable[[Health], bool]) -> Health:
        """Return the health once `predicate` holds (tests, start-up checks)."""
        while True:
            changed = self._changed
            health = self.health()
            if predicate(health):
                return health
            await changed.wait()

    async def wait_connected(self) -> None:
        await self.wait_health(lambda _: self._connected)

    async def idle(self) -> None:
        """Wait until no call is in hand (tests, shutdown)."""
        while self._active:
            await asyncio.gather(*list(self._active.values()), return_exceptions=True)

    # --- event loop -------------------------------------------------------------------

    def _health_changed(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _set_connected(self, value: bool) -> None:
        self._connected = value
        self._health_changed()
        metrics.CONNECTED.set(1 if value else 0)

    async def _run(self) -> None:
        backoff = Backoff(self._backoff_initial_s, self._backoff_max_s)
        while True:
            try:
                async with self._client.event_stream() as stream:
                    self._on_connected()
                    backoff.reset()  # after a successful connect
                    await self._read(stream)
            except AuthError as exc:
                self._last_error = str(exc)
                self._health_changed()
                log.error("ARI: %s", exc)
            except LinkDown as exc:
                self._last_error = str(exc)
                self._health_changed()
                log.warning("ARI link down: %s", exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not end routing for good
                self._last_error = f"{type(exc).__name__}: {exc}"
                self._health_changed()
                log.exception("ARI event loop failed; reconnecting")
            finally:
                self._set_connected(False)
            wait = backoff.next()
            log.info("ARI: reconnecting in %.2f s", wait)
            await asyncio.sleep(wait)

    def _on_connected(self) -> None:
        self._connections += 1
        metrics.RECONNECTS.inc()
        self._last_error = None
        self._replaced_at = None  # the app is ours again after a fresh subscribe
        self._set_connected(True)
        log.info("ARI: connected, app %r", self._app)
        self._schedule_resync(0.0, replace_running=True)

    async def _read(self, stream: EventSource) -> None:
        while True:
            message = await stream.receive()
            self._on_message(message, asyncio.get_running_loop().time())

    def _on_message(self, message: str | bytes, received_at: float) -> None:
        try:
            event = decode_event(message)
        except AriProtocolError as exc:
            metrics.BAD_EVENTS.inc()
            log.warning("ARI: skipped a bad event: %s", exc)
            return
        # Unknown types share one label: a peer must not grow the metric without bound.
        metrics.EVENTS.labels(
            "other" if isinstance(event, OtherEvent) else type(event).__name__
        ).inc()
        if isinstance(event, StasisStart):
            if event.application and event.application != self._app:
                return
            if event.args:
                log.info(
                    "ARI: channel %r entered with args %r; not an inbound call",
                    event.channel.id,
                    event.args,
                )
                return
            self._take(event.channel, received_at)
        elif isinstance(event, StasisEnd):
            # It left Stasis: a later StasisStart of the same channel is a real re-entry.
            self._done.pop(event.channel.id, None)
        elif isinstance(event, ChannelDestroyed):
            if event.channel.id not in self._active:
                self._remember(event.channel.id)
        elif isinstance(event, ApplicationReplaced):
            metrics.REPLACED.inc()
            self._replaced_at = self._clock().isoformat()
            self._health_changed()
            log.error(
                "ARI: app %r was taken over by another connection (ApplicationReplaced);"
                " this instance gets no more calls. Run ONE bridge per [ari] app.",
                self._app,
            )

    def _schedule_resync(self, delay: float, *, replace_running: bool = False) -> None:
        """Look for parked channels after `delay` s; one resync runs at a time.

        A request while one runs makes it go round once more (its list may predate the
        request). After a (re)connect the running one is replaced: only a fresh list counts.
        """
        running = self._resync_task
        if running is not None and not running.done():
            if not replace_running:
                self._resync_again = True
                return
            running.cancel()
        self._resync_again = False
        self._resync_task = asyncio.create_task(self._resync(delay), name="ari-resync")
        self._helpers.add(self._resync_task)
        self._resync_task.add_done_callback(self._helpers.discard)

    async def _resync(self, delay: float) -> None:
        """Continue every channel parked in our app that we are not already handling.

        Retries with backoff until `GET /channels` answers: a parked caller waits for it.
        """
        while True:
            if delay:
                await asyncio.sleep(delay)
            await self._resync_once()
            if not self._resync_again:
                return
            self._resync_again = False
            delay = equal_jitter(self._retry_parked_s)

    async def _resync_once(self) -> None:
        backoff = Backoff(self._backoff_initial_s, self._backoff_max_s)
        while True:
            try:
                channels = await self._client.list_channels()
                break
            except (LinkDown, AriProtocolError, AuthError) as exc:
                metrics.REST_ERRORS.labels(type(exc).__name__).inc()
                log.warning("ARI resync: GET /channels failed (%s); retrying", exc)
            await asyncio.sleep(backoff.next())
        now = asyncio.get_running_loop().time()
        found = 0
        for channel in channels:
            if in_app(channel, self._app) and self._take(channel, now):
                found += 1
        if found:
            metrics.RESYNCED.inc(found)
            log.info("ARI resync: %d parked channel(s) picked up", found)

    # --- one call ---------------------------------------------------------------------

    def _remember(self, channel_id: str) -> None:
        self._done[channel_id] = None
        self._done.move_to_end(channel_id)
        while len(self._done) > DONE_MEMORY:
            self._done.popitem(last=False)

    def _take(self, channel: AriChannel, received_at: float) -> bool:
        if channel.id in self._active or channel.id in self._done:
            return False
        task = asyncio.create_task(
            self._handle(channel, received_at), name=f"ari-call-{channel.id[:64]}"
        )
        self._active[channel.id] = task
        metrics.IN_FLIGHT.inc()

        def finished(_: asyncio.Task[None]) -> None:
            self._active.pop(channel.id, None)
            metrics.IN_FLIGHT.dec()

        task.add_done_callback(finished)
        return True

    def _inbound_call(self, channel: AriChannel) -> InboundCall:
        raw = plain_text(channel.caller_number, 256)
        return InboundCall(
            raw_caller=raw,
            caller=to_e164(raw, self._config.pbx.default_region),
            caller_name=plain_text(channel.caller_name, 256),
            did=plain_text(channel.exten, 256),
            at=self._clock(),
            channel=plain_text(channel.name, 256),
            uniqueid=channel.id,
            linkedid=channel.linkedid,
        )

    async def _linkedid(self, channel: AriChannel) -> str | None:
        """The call's linkedid for the recording name; None when the channel is gone."""
        if channel.linkedid or "${linkedid}" not in self._config.pbx.recording_template:
            return channel.linkedid or channel.id
        try:
            return await self._client.get_variable(channel.id, "CHANNEL(linkedid)") or channel.id
        except NotFound:
            return None
        except BridgeError as exc:
            log.info("ARI: linkedid of %r unknown (%s); using its id", channel.id, exc)
            return channel.id

    async def _decide(
        self, call: InboundCall, channel: AriChannel, deadline: float
    ) -> tuple[Decision, str | None]:
        """Route and learn the linkedid side by side, both within the caller's budget."""
        linked = asyncio.create_task(self._linkedid(channel))
        work = asyncio.ensure_future(self._route_in_slot(call, deadline))
        try:
            try:
                decision = await by_deadline(work, deadline)
            except TimeoutError:
                log.warning(
                    "ARI: no decision for %r within %.0f ms: default route",
                    channel.id,
                    self._budget_s * 1000,
                )
                decision = default_route(self._config.routing)
            except Exception:
                log.exception("ARI: router failed for %r: default route", channel.id)
                decision = default_route(self._config.routing)
            try:
                linkedid = await by_deadline(linked, deadline)
            except TimeoutError:
                linkedid = channel.id
        finally:
            abandon(work)  # a router past the deadline gives its slot back
            if not linked.done():
                linked.cancel()
                await asyncio.gather(linked, return_exceptions=True)
        return decision, linkedid

    async def _route_in_slot(self, call: InboundCall, deadline: float) -> Decision:
        async with self._slots:
            return await self._router.route(call, deadline)

    async def _handle(self, channel: AriChannel, received_at: float) -> None:
        started = asyncio.get_running_loop().time()
        call = self._inbound_call(channel)
        deadline = received_at + self._budget_s
        linkedid: str | None
        try:
            decision, linkedid = await self._decide(call, channel, deadline)
        except Exception:  # pragma: no cover - _decide already falls back
            log.exception("ARI: deciding %r failed", channel.id)
            decision, linkedid = default_route(self._config.routing), channel.id
        if linkedid is None:
            log.info("ARI: %r hung up before it was routed", channel.id)
            metrics.CALLS.labels("hung_up").inc()
            self._remember(channel.id)
            return
        call = replace(call, linkedid=linkedid)
        recording = recording_name(
            self._config.pbx.recording_template, linkedid=linkedid, uniqueid=channel.id
        )
        if decision.degraded:
            metrics.DEGRADED.inc()
        outcome = await self._apply(channel.id, contract_variables(decision, recording))
        metrics.CALLS.labels(outcome).inc()
        metrics.HANDLE_SECONDS.observe(asyncio.get_running_loop().time() - started)
        if outcome == "failed":
            # Still parked: look again soon, even if the websocket never drops.
            self._schedule_resync(equal_jitter(self._retry_parked_s))
            return
        self._remember(channel.id)
        if outcome == "continued":
            self._continued += 1
            try:
                await self._router.record(call, decision, recording)
            except Exception:
                log.exception("ARI: recording the decision for %r failed", channel.id)

    async def _apply(self, channel_id: str, variables: list[tuple[str, str]]) -> str:
        """Set the variables, then continue. Returns continued | hung_up | failed."""
        for name, value in variables:
            try:
                await self._client.set_variable(channel_id, name, value)
            except NotFound:
                log.info("ARI: %r hung up before it was routed", channel_id)
                return "hung_up"
            except BridgeError as exc:
                metrics.REST_ERRORS.labels(type(exc).__name__).inc()
                log.warning(
                    "ARI: setting %s on %r failed (%s); continuing anyway", name, channel_id, exc
                )
                break
        for attempt in range(self._continue_attempts):
            try:
                await self._client.continue_in_dialplan(channel_id)
                return "continued"
            except NotFound:
                log.info("ARI: %r hung up before continue", channel_id)
                return "hung_up"
            except LinkDown as exc:
                metrics.REST_ERRORS.labels(type(exc).__name__).inc()
                log.warning(
                    "ARI: continue %r failed (%s), attempt %d", channel_id, exc, attempt + 1
                )
                if attempt + 1 < self._continue_attempts:
                    await asyncio.sleep(_CONTINUE_BACKOFF.delay(attempt))
            except BridgeError as exc:
                metrics.REST_ERRORS.labels(type(exc).__name__).inc()
                log.error("ARI: continue %r refused: %s", channel_id, exc)
                break
        return "failed"
