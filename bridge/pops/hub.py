"""The screen-pop hub: tracker call events in, websocket pops out to the agents concerned.

Wire protocol and close codes: `bridge.pops.protocol`. Origin rules: `bridge.pops.origins`.

Who gets what:
- `call.ringing` goes to the agent whose device rings (device → agent through the agents
  table, cached for `agent_ttl_s`), with the customer card filtered by that agent's
  permissions. The card is looked up once per call, by the caller's normalised number.
- `call.answered`, `call.transferred` and `call.ended` go to the agents whose device is still
  part of the call (ringing, answered or transferred away), `call.retracted` to the agent
  whose ringing stopped. A transfer target that never rang first gets the call's
  `call.ringing` (its card) right before `call.transferred`.
- Supervisors and admins subscribed to a queue get each of its calls once: ringing (full
  card), answered, transferred and ended.
- A (re)connecting client gets `call.ringing` (and `call.answered`) for every call ringing or
  in progress on its agent's device right after `welcome`; a new queue subscription likewise.

Never blocking: `handle()` only enqueues. Each client has a bounded queue (`[pops]
client_queue`) drained by its own writer task; a client whose queue is full is dropped with
close code 4008 (and the TCP connection aborted if the close cannot be delivered), so a slow
or dead page never delays the others. Events of one call are handled in order (one lock
per call); different calls do not wait for each other's customer lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from bridge.component import Health
from bridge.crm.agents import Agent
from bridge.errors import BridgeError, ConfigError
from bridge.models import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallRetracted,
    CallRinging,
    CallTransferred,
)
from bridge.pops import metrics
from bridge.pops.card import CustomerCard
from bridge.pops.origins import origin_allowed
from bridge.pops.permissions import FULL_ROLES, visible_card
from bridge.pops.protocol import (
    CLOSE_AUTH,
    CLOSE_INTERNAL,
    CLOSE_SLOW,
    MAX_MESSAGE,
    Hello,
    Ping,
    PopProtocolError,
    Subscribe,
    Unsubscribe,
    encode,
    iso,
    parse_client_message,
)

log = logging.getLogger(__name__)

__all__ = ["PopHub"]

Authenticate = Callable[[str], Awaitable[Agent | None]]
AgentByDevice = Callable[[str], Awaitable[Agent | None]]
CardForCaller = Callable[[str], Awaitable[CustomerCard | None]]
# rows of (call_id, agent_id, how); written in batches off the pop path
ParticipantSink = Callable[[Sequence[tuple[str, str, str]]], Awaitable[None]]
Origins = Sequence[str] | Callable[[], Sequence[str]]

MAX_IN_FLIGHT = 10_000
MAX_CALLS = 50_000  # live calls remembered for catch-up and routing
_CLOSE_REASONS = {1003: "binary", 1009: "too_big", 4001: "auth", 4002: "malformed", 4008: "slow"}


@dataclass(eq=False)
class _Client:
    ws: ServerConnection
    agent: Agent
    queue: asyncio.Queue[tuple[str, str, float | None]]
    queues: set[str] = field(default_factory=set)
    writer: asyncio.Task[None] | None = None
    closing: bool = False


@dataclass(eq=False)
class _Call:
    call_id: str
    caller: str
    caller_name: str
    queue: str | None
    ringing_at: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    card: CustomerCard | None = None
    card_loaded: bool = False
    legs: dict[str, str] = field(default_factory=dict)  # device -> ringing|answered|away
    answered: dict[str, str] = field(default_factory=dict)  # device -> ISO time answered
    agent_of: dict[str, str | None] = field(default_factory=dict)  # device -> agent id

    def involved(self, ringing: bool = True) -> list[str]:
        states = ("ringing", "answered", "away") if ringing else ("answered", "away")
        return [d for d, state in self.legs.items() if state in states]


class PopHub:
    """Component `pops`: the websocket server on `[pops]` host/port plus the routing above."""

    name = "pops"

    def __init__(
        self,
        *,
        authenticate: Authenticate,
        agent_by_device: AgentByDevice,
        card_for_caller: CardForCaller,
        host: str = "127.0.0.1",
        port: int = 8765,
        origins: Origins = (),
        client_queue: int = 256,
        hello_timeout_s: float = 5.0,
        max_size: int = MAX_MESSAGE,
        agent_ttl_s: float = 30.0,
        record_participant: ParticipantSink | None = None,
        close_timeout_s: float = 2.0,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._authenticate = authenticate
        self._agent_by_device = agent_by_device
        self._card_for_caller = card_for_caller
        self._origins = origins
        self._client_queue = max(1, client_queue)
        self._hello_timeout = hello_timeout_s
        self._max_size = max_size
        self._agent_ttl = agent_ttl_s
        self._record_participant = record_participant
        self._pending_participants: list[tuple[str, str, str]] = []
        self._participant_task: asyncio.Task[None] | None = None
        self._close_timeout = close_timeout_s
        self._server: Server | None = None
        self._port: int | None = None
        self._clients: dict[str, set[_Client]] = {}  # agent id -> clients
        self._subscribers: dict[str, set[_Client]] = {}  # queue -> clients
        self._calls: dict[str, _Call] = {}
        self._agents: dict[str, tuple[float, Agent | None]] = {}  # device -> (expiry, agent)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Event()

    # --- Component -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the pop hub is not started")
        return self._port

    async def start(self) -> None:
        try:
            self._server = await serve(
                self._serve,
                self.host,
                self._requested_port,
                process_request=self._check_origin,
                max_size=self._max_size,
                max_queue=16,
                compression=None,
                close_timeout=self._close_timeout,
                ping_interval=20,
                ping_timeout=20,
            )
        except OSError as exc:
            raise ConfigError(
                "pops.port", f"cannot listen on {self.host}:{self._requested_port}: {exc}"
            ) from exc
        sockets = list(self._server.sockets)
        self._port = sockets[0].getsockname()[1] if sockets else self._requested_port
        log.info("pop hub listening on %s:%s", self.host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.close(close_connections=True)
            await server.wait_closed()
        if self._participant_task is not None and not self._participant_task.done():
            # who was rung decides who may file a disposition: try to keep it
            with contextlib.suppress(TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(self._participant_task), 2.0)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._clients.clear()
        self._subscribers.clear()
        metrics.CONNECTED.set(0)

    def health(self) -> Health:
        detail = {"agents": self.connected_agents, "clients": self.connected_clients}
        if self._server is None:
            return Health("down", detail=detail)
        return Health("up", detail={**detail, "calls": len(self._calls)})

    @property
    def connected_agents(self) -> int:
        return sum(1 for clients in self._clients.values() if clients)

    @property
    def connected_clients(self) -> int:
        return sum(len(clients) for clients in self._clients.values())

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds; re-checked whenever a client comes or goes."""
        while not predicate():
            self._changed.clear()
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()

    # --- call events -------------------------------------------------------------------------

    async def handle(self, event: CallEvent, *, received: float | None = None) -> None:
        """Route one tracker event to the pops it causes. Never raises for bad data.

        `received` (a `time.perf_counter()` value) is when the event reached the bridge; the
        pop latency metric counts from there.
        """
        started = time.perf_counter() if received is None else received
        try:
            if isinstance(event, CallRinging):
                await self._on_ringing(event, started)
            elif isinstance(event, CallAnswered):
                await self._on_answered(event)
            elif isinstance(event, CallRetracted):
                await self._on_retracted(event)
            elif isinstance(event, CallTransferred):
                await self._on_transferred(event)
            elif isinstance(event, CallEnded):
                await self._on_ended(event)
        except Exception:
            log.exception("pop hub could not handle %s", type(event).__name__)

    async def submit(self, event: CallEvent) -> None:
        """Like `handle`, but return at once: the AMI link's subscriber callback.

        Each event runs in its own task, so one call's customer lookup never holds up the
        pops of another. Events of one call still apply in order: tasks start in creation
        order, create/find the call without awaiting, and queue on the call's FIFO lock.
        Past `MAX_IN_FLIGHT` pending events it waits (back-pressure instead of growth).
        """
        received = time.perf_counter()
        if len(self._tasks) >= MAX_IN_FLIGHT:
            await self.handle(event, received=received)
        else:
            self._spawn(self.handle(event, received=received))

    async def drain(self) -> None:
        """Wait until every event submitted so far has been handled (tests, shutdown)."""
        while pending := [t for t in self._tasks if not t.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    async def handle_all(self, events: Iterable[CallEvent]) -> None:
        for event in events:
            await self.handle(event)

    async def _on_ringing(self, e: CallRinging, started: float) -> None:
        call = self._calls.get(e.call_id)
        if call is None:
            if len(self._calls) >= MAX_CALLS:  # calls whose end never came: forget the oldest
                self._calls.pop(next(iter(self._calls)))
            call = _Call(e.call_id, e.caller, e.caller_name, e.queue, iso(e.at))
            self._calls[e.call_id] = call
        async with call.lock:
            first_ring = not call.legs
            if call.queue is None and e.queue:
                call.queue = e.queue
            await self._load_card(call)
            call.legs[e.device] = "ringing"
            agent = await self._agent(e.device)
            call.agent_of[e.device] = agent.id if agent else None
            if agent is not None:
                self._participant(call.call_id, agent.id, "rung")
                for client in self._clients_of(agent.id):
                    self._send(client, self._ringing(call, client.agent, iso(e.at)), started)
            if first_ring and call.queue:
                for client in self._subscribers_of(call.queue, exclude=agent):
                    self._send(client, self._ringing(call, client.agent, iso(e.at)), started)

    async def _on_answered(self, e: CallAnswered) -> None:
        call = self._calls.get(e.call_id)
        if call is None:
            return
        async with call.lock:
            call.legs[e.device] = "answered"
            call.answered[e.device] = iso(e.at)
            agent = await self._agent(e.device)
            call.agent_of[e.device] = agent.id if agent else None
            if agent is not None:
                self._participant(call.call_id, agent.id, "answered")
            msg = self._message("call.answered", call, iso(e.at), agent=_id(agent))
            self._fanout(call, msg, devices=[e.device], ringing=False)

    async def _on_retracted(self, e: CallRetracted) -> None:
        call = self._calls.get(e.call_id)
        if call is None:
            return
        async with call.lock:
            if call.legs.get(e.device) not in ("ringing", "answered"):
                return
            call.legs[e.device] = "retracted"
            agent = await self._agent(e.device)
            if agent is None:
                return
            msg = encode(self._message("call.retracted", call, iso(e.at), reason=e.reason))
            for client in self._clients_of(agent.id):
                self._send(client, ("call.retracted", msg))

    async def _on_transferred(self, e: CallTransferred) -> None:
        call = self._calls.get(e.call_id)
        if call is None:
            return
        async with call.lock:
            await self._load_card(call)
            if e.from_device and call.legs.get(e.from_device) in ("ringing", "answered"):
                call.legs[e.from_device] = "away"
            target = await self._agent(e.to_device)
            call.agent_of[e.to_device] = target.id if target else None
            if target is not None and call.legs.get(e.to_device) not in ("ringing", "answered"):
                for client in self._clients_of(target.id):
                    self._send(client, self._ringing(call, client.agent, iso(e.at)))
            call.legs[e.to_device] = "answered"
            call.answered.setdefault(e.to_device, iso(e.at))
            if target is not None:
                self._participant(call.call_id, target.id, "transferred")
            msg = self._message("call.transferred", call, iso(e.at), agent=_id(target))
            self._fanout(call, msg, devices=[e.to_device, e.from_device])

    async def _on_ended(self, e: CallEnded) -> None:
        call = self._calls.pop(e.call_id, None)
        if call is None:
            return
        async with call.lock:
            msg = self._message(
                "call.ended",
                call,
                iso(e.at),
                duration_s=e.summary.duration_s,
                talk_s=e.summary.talk_s,
                outcome=e.summary.outcome,
            )
            self._fanout(call, msg, devices=[])

    # --- building and routing messages -------------------------------------------------------

    async def _load_card(self, call: _Call) -> None:
        if call.card_loaded:
            return
        try:
            call.card = await self._card_for_caller(call.caller)
        except BridgeError as exc:
            log.warning("no customer card for call %s: %s", call.call_id, exc)
            call.card = None
        call.card_loaded = True

    @staticmethod
    def _message(kind: str, call: _Call, at: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "call_id": call.call_id, "at": at, **fields}

    def _ringing(self, call: _Call, viewer: Agent, at: str) -> tuple[str, str]:
        msg = self._message(
            "call.ringing",
            call,
            at,
            caller=call.caller,
            caller_name=call.caller_name,
            queue=call.queue,
            customer=visible_card(viewer, call.card),
        )
        return ("call.ringing", encode(msg))

    def _fanout(
        self,
        call: _Call,
        msg: dict[str, Any],
        devices: Iterable[str | None],
        *,
        ringing: bool = True,
    ) -> None:
        """Send `msg` to the agents in the call (and `devices`), and to queue followers.

        `ringing=False` leaves out agents whose device is only ringing (an answer elsewhere
        reaches them as their own `call.retracted`).
        """
        text = (str(msg["type"]), encode(msg))
        targets: set[str] = set()
        for device in [*call.involved(ringing), *devices]:
            if device is None:
                continue
            agent_id = call.agent_of.get(device)
            if agent_id is not None:
                targets.add(agent_id)
        sent: set[_Client] = set()
        for agent_id in targets:
            for client in self._clients_of(agent_id):
                self._send(client, text)
                sent.add(client)
        if call.queue:
            for client in self._subscribers_of(call.queue):
                if client not in sent:
                    self._send(client, text)

    def _clients_of(self, agent_id: str) -> list[_Client]:
        return [c for c in self._clients.get(agent_id, ()) if not c.closing]

    def _subscribers_of(self, queue: str, exclude: Agent | None = None) -> list[_Client]:
        return [
            c
            for c in self._subscribers.get(queue, ())
            if not c.closing and (exclude is None or c.agent.id != exclude.id)
        ]

    async def _agent(self, device: str) -> Agent | None:
        now = time.monotonic()
        cached = self._agents.get(device)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            agent = await self._agent_by_device(device)
        except BridgeError as exc:
            log.warning("cannot map device %r to an agent: %s", device, exc)
            return cached[1] if cached is not None else None
        if agent is not None and not agent.active:
            agent = None
        if len(self._agents) > 10_000:
            self._agents.clear()
        self._agents[device] = (now + self._agent_ttl, agent)
        return agent

    def forget_agents(self) -> None:
        """Drop the device → agent cache (call after agents change)."""
        self._agents.clear()

    def _participant(self, call_id: str, agent_id: str, how: str) -> None:
        """Remember who a call was popped to (dispositions check it), batched."""
        if self._record_participant is None:
            return
        self._pending_participants.append((call_id, agent_id, how))
        if self._participant_task is None or self._participant_task.done():
            self._participant_task = asyncio.ensure_future(self._write_participants())
            self._tasks.add(self._participant_task)
            self._participant_task.add_done_callback(self._tasks.discard)

    async def _write_participants(self) -> None:
        assert self._record_participant is not None
        while self._pending_participants:
            rows = self._pending_participants[:1000]
            del self._pending_participants[:1000]
            try:
                await self._record_participant(rows)
            except Exception as exc:
                log.warning("cannot record %d call participants: %s", len(rows), exc)

    # --- clients -----------------------------------------------------------------------------

    def _send(self, client: _Client, item: tuple[str, str], started: float | None = None) -> None:
        if client.closing:
            return
        try:
            client.queue.put_nowait((item[0], item[1], started))
        except asyncio.QueueFull:
            self._drop(client, CLOSE_SLOW, "too slow: send queue full")

    def _drop(self, client: _Client, code: int, reason: str) -> None:
        if client.closing:
            return
        client.closing = True
        metrics.DROPPED.labels(_CLOSE_REASONS.get(code, str(code))).inc()
        log.info("dropping pop client of agent %s: %s", client.agent.id, reason)
        self._unregister(client)
        if client.writer is not None:
            client.writer.cancel()
        self._spawn(self._close(client.ws, code, reason))

    async def _close(self, ws: ServerConnection, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(self._close_timeout):
                await ws.close(code, reason)
        except TimeoutError:
            ws.transport.abort()
        except Exception as exc:  # the peer may already be gone
            log.debug("closing a pop client failed: %s", exc)
            ws.transport.abort()

    async def _writer(self, client: _Client) -> None:
        while True:
            kind, text, started = await client.queue.get()
            try:
                await client.ws.send(text)
            except ConnectionClosed:
                return
            metrics.SENT.labels(kind).inc()
            if started is not None:
                metrics.LATENCY.observe(time.perf_counter() - started)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _register(self, client: _Client) -> None:
        self._clients.setdefault(client.agent.id, set()).add(client)
        metrics.CONNECTED.inc()
        self._notify()

    def _unregister(self, client: _Client) -> None:
        clients = self._clients.get(client.agent.id)
        if clients is not None and client in clients:
            clients.discard(client)
            if not clients:
                del self._clients[client.agent.id]
            metrics.CONNECTED.dec()
        for queue in client.queues:
            subs = self._subscribers.get(queue)
            if subs is not None:
                subs.discard(client)
                if not subs:
                    del self._subscribers[queue]
        client.queues.clear()
        self._notify()

    def _allowed_origins(self) -> Sequence[str]:
        return self._origins() if callable(self._origins) else self._origins

    def _check_origin(self, connection: ServerConnection, request: Request) -> Response | None:
        origin = request.headers.get("Origin")
        if origin_allowed(origin, self._allowed_origins()):
            return None
        log.info("pop websocket refused for Origin %r", origin)
        return Response(
            403,
            "Forbidden",
            Headers([("Content-Type", "text/plain"), ("Connection", "close")]),
            b"origin not allowed; add it to [pops] origins\n",
        )

    async def _hello(self, ws: ServerConnection) -> Agent | None:
        try:
            async with asyncio.timeout(self._hello_timeout):
                raw = await ws.recv()
        except TimeoutError:
            metrics.DROPPED.labels("auth").inc()
            await self._close(ws, CLOSE_AUTH, "no hello in time")
            return None
        except ConnectionClosed:
            return None
        try:
            msg = parse_client_message(raw)
        except PopProtocolError as exc:
            code = exc.code if exc.code in (1003, 1009) else CLOSE_AUTH
            metrics.DROPPED.labels(_CLOSE_REASONS.get(code, "auth")).inc()
            await self._close(ws, code, f"hello expected: {exc.reason}")
            return None
        if not isinstance(msg, Hello):
            metrics.DROPPED.labels("auth").inc()
            await self._close(ws, CLOSE_AUTH, "the first message must be a hello")
            return None
        try:
            agent = await self._authenticate(msg.token)
        except BridgeError as exc:
            log.warning("cannot authenticate a pop client: %s", exc)
            await self._close(ws, CLOSE_INTERNAL, "cannot check the token now; retry")
            return None
        if agent is None:
            metrics.DROPPED.labels("auth").inc()
            await self._close(ws, CLOSE_AUTH, "wrong token")
            return None
        return agent

    async def _serve(self, ws: ServerConnection) -> None:
        agent = await self._hello(ws)
        if agent is None:
            return
        client = _Client(ws, agent, asyncio.Queue(self._client_queue))
        # a connected agent's device needs no lookup when it rings
        self._agents[agent.device] = (time.monotonic() + self._agent_ttl, agent)
        self._send(client, ("welcome", encode({"type": "welcome", "agent": agent.id})))
        self._catch_up(client, lambda call: self._device_in(call, agent.device))
        if client.closing:
            return
        self._register(client)
        client.writer = asyncio.create_task(self._writer(client))
        try:
            async for raw in ws:
                try:
                    msg = parse_client_message(raw)
                except PopProtocolError as exc:
                    self._drop(client, exc.code, exc.reason)
                    break
                self._on_client_message(client, msg)
        except ConnectionClosed:
            pass
        finally:
            if not client.closing:
                client.closing = True
                self._unregister(client)
                client.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await client.writer

    def _on_client_message(self, client: _Client, msg: Any) -> None:
        if isinstance(msg, Ping):
            self._send(client, ("pong", encode({"type": "pong"})))
        elif isinstance(msg, Hello):
            self._send(client, _error("already_welcome", "already authenticated"))
        elif isinstance(msg, Subscribe):
            if client.agent.role not in FULL_ROLES:
                self._send(client, _error("forbidden", "only supervisors and admins follow queues"))
                return
            if msg.queue not in client.queues:
                client.queues.add(msg.queue)
                self._subscribers.setdefault(msg.queue, set()).add(client)
            self._send(client, ("subscribed", encode({"type": "subscribed", "queue": msg.queue})))
            self._catch_up(client, lambda call: call.queue == msg.queue)
        elif isinstance(msg, Unsubscribe):
            client.queues.discard(msg.queue)
            subs = self._subscribers.get(msg.queue)
            if subs is not None:
                subs.discard(client)
            self._send(
                client, ("unsubscribed", encode({"type": "unsubscribed", "queue": msg.queue}))
            )

    @staticmethod
    def _device_in(call: _Call, device: str) -> bool:
        return call.legs.get(device) in ("ringing", "answered")

    def _catch_up(self, client: _Client, wanted: Callable[[_Call], bool]) -> None:
        """Queue ringing (+ answered) for the calls `wanted` selects, oldest first."""
        for call in list(self._calls.values()):
            if not call.card_loaded or not wanted(call):
                continue
            self._send(client, self._ringing(call, client.agent, call.ringing_at))
            for device, at in call.answered.items():
                if call.legs.get(device) == "answered":
                    agent = call.agent_of.get(device)
                    msg = self._message("call.answered", call, at, agent=agent)
                    self._send(client, ("call.answered", encode(msg)))


def _id(agent: Agent | None) -> str | None:
    return None if agent is None else agent.id


def _error(error: str, reason: str) -> tuple[str, str]:
    return ("error", encode({"type": "error", "error": error, "reason": reason}))
