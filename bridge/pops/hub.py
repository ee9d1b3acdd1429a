"""The screen-pop hub: delivers the pop router's messages to the agents' websockets.

Wire protocol and close codes: `bridge.pops.protocol`. Who gets what: `bridge.pops.router`.
Who an agent is, and whether its session is still valid: `bridge.crm.roster`.

Order: `dispatch(events)` runs synchronously where the tracker emits (an event-bus observer,
right after each tracker batch), routes each event and puts its messages on the recipients'
queues at once. Each page has one FIFO queue and one writer task, so an agent's pops leave in
the order the PBX events arrived, across calls. A `call.ringing` waits in that queue for its
customer card: the card of a call is looked up once, when its first ringing is delivered
(`card_for_call` answers from memory when routing handed the call over), and again after a
change notice about its customer (`forget_cards`: a transfer shows the new card), concurrently
with other calls' lookups, but a slow lookup only delays the pops queued
behind it for the same pages, never reorders them.

Never blocking: a page that cannot keep up, more than `[pops] client_queue` messages behind
while its socket does not take them, is dropped with close code 4008 (and its TCP connection
aborted if the close cannot be delivered), so a slow or dead page never delays the others.
Messages queued behind a card still being looked up do not count against the page: the
lookup is slow, not the page (they are bounded by the live calls, `MAX_PENDING` at most).

Sessions follow their token: when the roster says an agent's token changed or the agent was
disabled, its open pages are closed with 4003 at once and get nothing more. So are the pages
of a supervisor or admin demoted to agent (they hold full cards and follow queues); any
other change (name, device, a promotion) applies to the open pages at once.

Desk and wallboard (`use_board`): a page's `status` message pauses or resumes its agent in
all its queues through the board (AMI `QueuePause`), and every page of that agent hears the
new state; a page is told its agent's state after the welcome. At most one pause per agent
is in flight: a status sent meanwhile waits, replaced by any later one (each sets the whole
state), so a stuck key or a hostile page cannot flood the PBX with actions. The board's
`queue.stats` go out through `publish_queue` to the followers of the queue, and a new
follower gets the current figures right after its catch-up.

A (re)connecting page is brought up to date from the tracker (`catch_up(device)`), a new
queue follower from its snapshot; both run between two event batches, so nothing is missed
or sent twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from bridge.component import Health
from bridge.crm.agents import Agent
from bridge.errors import BridgeError, ConfigError
from bridge.models import CallEnded, CallEvent, CustomerCard
from bridge.netguard import ConnectionGuard
from bridge.netguard.ws import guarded_connection
from bridge.pops import metrics
from bridge.pops.call_cards import CallCards
from bridge.pops.origins import origin_allowed
from bridge.pops.permissions import FULL_ROLES, visible_card
from bridge.pops.protocol import (
    CLOSE_AUTH,
    CLOSE_INTERNAL,
    CLOSE_REVOKED,
    CLOSE_SLOW,
    MAX_MESSAGE,
    Hello,
    Ping,
    PopProtocolError,
    Status,
    Subscribe,
    Unsubscribe,
    encode,
    parse_client_message,
)
from bridge.pops.router import Pop, PopRouter
from bridge.tasks import cancel_and_wait
from bridge.tracker.tracker import LiveCall

log = logging.getLogger(__name__)

__all__ = ["Board", "CardForCall", "CardForCaller", "CardSink", "LiveCalls", "PopHub", "Sessions"]

CardForCaller = Callable[[str], Awaitable[CustomerCard | None]]
# (call id, caller) -> the card: a source that knows the call (routing handed it over)
CardForCall = Callable[[str, str], Awaitable[CustomerCard | None]]
# call id -> why the call came here ({"rule", "queue", "priority", "degraded"}), if known
RouteForCall = Callable[[str], Awaitable[dict[str, Any] | None]]
_Looked = tuple[CustomerCard | None, dict[str, Any] | None]
Origins = Sequence[str] | Callable[[], Sequence[str]]
MAX_CARDS = 50_000  # calls whose card is kept; a call whose end never came is forgotten first
MAX_PENDING = 50_000  # messages queued for one page, whatever they wait for
_CLOSE_REASONS = {
    1003: "binary",
    1009: "too_big",
    4001: "auth",
    4002: "malformed",
    4003: "revoked",
    4008: "slow",
}


class LiveCalls(Protocol):
    """The tracker, as the hub reads it."""

    def view(self, call_id: str) -> LiveCall | None: ...

    def catch_up(self, device: str) -> list[CallEvent]: ...

    def snapshot(self) -> list[LiveCall]: ...


class Sessions(Protocol):
    """The agent roster, as the hub uses it."""

    async def authenticate(self, token: str) -> tuple[Agent, str] | None: ...

    def session_valid(self, agent_id: str, digest: str) -> bool: ...

    def agent_id_of(self, device: str) -> str | None: ...

    def get(self, agent_id: str) -> Agent | None: ...

    def on_change(self, callback: Callable[[str], None]) -> None: ...


class Board(Protocol):
    """The wallboard, as the hub uses it (`bridge.wallboard.board.WallBoard`)."""

    async def pause(self, device: str, paused: bool, reason: str) -> None: ...

    def status_of(self, device: str) -> tuple[bool, str] | None: ...

    def message(self, queue: str) -> dict[str, Any]: ...


# (agent id, customer id, call id, the card as shown): the audit of who saw what
CardSink = Callable[[str, str, str, dict[str, Any]], None]


class _Card:
    """One call's customer card (and routing reason), looked up once, awaited by every pop
    that carries it."""

    __slots__ = ("task",)

    def __init__(self, task: asyncio.Task[_Looked]) -> None:
        self.task = task

    async def get(self) -> _Looked:
        return await asyncio.shield(self.task)

    def customer_id(self) -> str | None:
        """The id of the customer the finished lookup found, else None."""
        task = self.task
        if not task.done() or task.cancelled() or task.exception() is not None:
            return None
        card = task.result()[0]
        return None if card is None else card.id


@dataclass(slots=True)
class _Out:
    kind: str
    call_id: str
    text: str | None  # encoded, unless it waits for a card
    message: dict[str, Any] | None = None
    card: _Card | None = None
    started: float | None = None


@dataclass(eq=False, slots=True)
class _Client:
    """One page. An idle page holds no task and no buffers: its writer runs only while it
    has messages to send (a thousand idle agents cost little more than their sockets)."""

    ws: ServerConnection
    agent: Agent
    digest: str
    pending: deque[_Out] | None = None  # made for the first message, dropped once sent
    sending: bool = False  # the writer waits on the socket, not on a card
    queues: set[str] | None = None  # followed queues (supervisors and admins)
    writer: asyncio.Task[None] | None = None  # only while `pending` is being sent
    live: bool = False  # registered: its writer may run
    closing: bool = False


class PopHub:
    """Component `pops`: the websocket server on `[pops]` host/port."""

    name = "pops"

    def __init__(
        self,
        *,
        sessions: Sessions,
        card_for_caller: CardForCaller,
        live: LiveCalls | None = None,
        host: str = "127.0.0.1",
        port: int = 8765,
        origins: Origins = (),
        client_queue: int = 256,
        hello_timeout_s: float = 5.0,
        card_timeout_s: float = 5.0,
        max_size: int = MAX_MESSAGE,
        close_timeout_s: float = 2.0,
        max_connections: int = 1024,
        header_timeout_s: float = 10.0,
        card_seen: CardSink | None = None,
        route_for_call: RouteForCall | None = None,
        view_card: Callable[[Agent, CustomerCard | None], dict[str, Any] | None] = visible_card,
        card_for_call: CardForCall | None = None,
        on_stop: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._sessions = sessions
        self._card_for_caller = card_for_caller
        self._card_for_call = card_for_call  # preferred over card_for_caller when given
        self._on_stop = on_stop  # the card sources' own shutdown
        self._route_for_call = route_for_call
        self._live = live
        self._router = PopRouter(sessions.agent_id_of)
        self._origins = origins
        self._client_queue = max(1, client_queue)
        self._hello_timeout = hello_timeout_s
        self._card_timeout = card_timeout_s
        self._max_size = max_size
        self._close_timeout = close_timeout_s
        self._card_seen = card_seen
        self._header_timeout = header_timeout_s
        # Idle or trickling sockets must not hold the port (or the process's descriptors):
        # at most `max_connections`, each with 10 s to finish its upgrade request.
        self._guard = ConnectionGuard(
            "pops",
            max_connections=max_connections,
            first_byte_timeout_s=min(5.0, header_timeout_s),
            header_timeout_s=header_timeout_s,
        )
        self._view_card = view_card
        self._server: Server | None = None
        self._port: int | None = None
        self._clients: dict[str, set[_Client]] = {}  # agent id -> pages
        self._by_device: dict[str, set[_Client]] = {}  # device -> pages of its agent
        self._subscribers: dict[str, set[_Client]] = {}  # queue -> pages
        self._cards: CallCards[_Card] = CallCards(MAX_CARDS, _Card.customer_id)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Event()
        self._board: Board | None = None
        # agent id -> the status waiting behind the one in flight (None: nothing waits)
        self._status_busy: dict[str, tuple[_Client, Status] | None] = {}
        sessions.on_change(self._on_agent_changed)

    def use_board(self, board: Board) -> None:
        """Pauses go to `board`; new queue followers get its figures."""
        self._board = board

    def customer_name(self, call_id: str) -> str | None:
        """The CRM name of a live call's caller, once its card has been looked up."""
        card = self._cards.get(call_id)
        if card is None or not card.task.done() or card.task.cancelled():
            return None
        if card.task.exception() is not None:
            return None
        found = card.task.result()[0]
        return None if found is None else found.name

    def follows(self, queue: str) -> bool:
        """Whether some page follows `queue` now (its `queue.stats` are worth building)."""
        return any(not c.closing for c in self._subscribers.get(queue, ()))

    def forget_cards(self, customer_id: str | None) -> None:
        """A change notice for `customer_id` (None: anything changed): the live calls'
        cards of that customer are looked up again at their next ringing (a transfer after
        the change shows the new card, not the one of the first ringing)."""
        self._cards.forget_customer(customer_id)

    def publish_queue(self, queue: str, message: dict[str, Any]) -> None:
        """Send `message` (a `queue.stats`) to every page following `queue`. Never waits."""
        followers = [c for c in self._subscribers.get(queue, ()) if not c.closing]
        if not followers:
            return
        out = _Out(str(message.get("type", "queue.stats")), "", encode(message))
        for client in followers:
            self._send(client, out)

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
                create_connection=guarded_connection(self._guard),
                open_timeout=self._header_timeout,
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
        self._guard.close()
        await cancel_and_wait(*self._tasks, *(card.task for card in self._cards.values()))
        self._cards.clear()
        if self._on_stop is not None:
            await self._on_stop()
        self._clients.clear()
        self._by_device.clear()
        self._subscribers.clear()
        metrics.CONNECTED.set(0)

    def health(self) -> Health:
        detail: dict[str, Any] = {
            "agents": self.connected_agents,
            "clients": self.connected_clients,
            "connections": self._guard.snapshot(),
        }
        if self._server is None:
            return Health("down", detail=detail)
        return Health("up", detail={**detail, "calls": self._router.live_calls()})

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

    def dispatch(self, events: Iterable[CallEvent], *, received: float | None = None) -> None:
        """Route tracker events to the pages concerned, in order. Never waits, never raises.

        Call it where the tracker emits, before it is fed again: the router reads the tracker's
        view of each call. `received` (a `time.perf_counter()` value) is when the PBX event
        reached the bridge; the pop latency metric counts from there.
        """
        started = time.perf_counter() if received is None else received
        for event in events:
            try:
                view = self._live.view(event.call_id) if self._live is not None else None
                for pop in self._router.route(event, view):
                    self._deliver(pop, started)
            except Exception:
                log.exception("pop hub could not route %s", type(event).__name__)
            if isinstance(event, CallEnded):
                self._cards.drop(event.call_id)

    async def submit(self, event: CallEvent) -> None:
        """`dispatch` one event; the shape of an AMI link subscriber (benchmarks, tests)."""
        self.dispatch((event,))

    async def handle(self, event: CallEvent) -> None:
        self.dispatch((event,))

    async def handle_all(self, events: Iterable[CallEvent]) -> None:
        self.dispatch(events)

    async def drain(self) -> None:
        """Wait until every card looked up so far is loaded (tests, shutdown)."""
        pending = [card.task for card in self._cards.values() if not card.task.done()]
        if pending:
            await asyncio.wait(pending)

    def _deliver(self, pop: Pop, started: float | None, only: _Client | None = None) -> None:
        if only is not None:
            targets: Iterable[_Client] = (only,)
        elif pop.device is not None:
            targets = list(self._by_device.get(pop.device, ()))
        elif pop.queue is not None:
            targets = [
                c
                for c in self._subscribers.get(pop.queue, ())
                if c.agent.device not in pop.skip_devices
            ]
        else:
            return
        out: _Out | None = None
        for client in targets:
            if client.closing:
                continue
            if out is None:
                out = self._out(pop, started)
            self._send(client, out)

    def _out(self, pop: Pop, started: float | None) -> _Out:
        if not pop.card:
            return _Out(pop.kind, pop.call_id, encode(dict(pop.message)), started=started)
        card = self._card(pop.call_id, str(pop.message.get("caller") or ""))
        return _Out(pop.kind, pop.call_id, None, dict(pop.message), card, started)

    def _card(self, call_id: str, caller: str) -> _Card:
        card = self._cards.get(call_id)
        if card is None:
            card = _Card(asyncio.ensure_future(self._load_card(call_id, caller)))
            self._cards.put(call_id, card, card.task)
        return card

    async def _load_card(self, call_id: str, caller: str) -> _Looked:
        if self._card_for_call is not None:
            found = self._card_for_call(call_id, caller)
        else:
            found = self._card_for_caller(caller)
        card, route = await asyncio.gather(
            self._lookup("customer card", call_id, found),
            self._lookup("route", call_id, self._load_route(call_id)),
        )
        return card, route

    async def _load_route(self, call_id: str) -> dict[str, Any] | None:
        return None if self._route_for_call is None else await self._route_for_call(call_id)

    async def _lookup(self, what: str, call_id: str, work: Awaitable[Any]) -> Any:
        try:
            async with asyncio.timeout(self._card_timeout):
                return await work
        except (BridgeError, TimeoutError) as exc:
            log.warning("no %s for call %s: %s", what, call_id, exc or "timed out")
        except Exception:
            log.exception("%s lookup failed for call %s", what, call_id)
        return None

    # --- sessions ------------------------------------------------------------------------------

    def _on_agent_changed(self, agent_id: str) -> None:
        """The roster's row for `agent_id` changed: close pages whose token is no longer valid."""
        for client in list(self._clients.get(agent_id, ())):
            if not self._sessions.session_valid(agent_id, client.digest):
                self._drop(client, CLOSE_REVOKED, "token rotated or agent disabled")
                continue
            agent = self._sessions.get(agent_id)
            if agent is None or agent == client.agent:
                continue
            if client.agent.role in FULL_ROLES and agent.role not in FULL_ROLES:
                # Demoted: the page holds full cards and follows queues it no longer may.
                self._drop(client, CLOSE_REVOKED, "role changed: sign in again")
                continue
            if agent.device != client.agent.device:
                self._index_device(client, remove=True)
                client.agent = agent
                self._index_device(client)
            client.agent = agent  # name or role: cards and queues follow the current role

    # --- clients -----------------------------------------------------------------------------

    def _send(self, client: _Client, out: _Out) -> None:
        if client.closing:
            return
        pending = client.pending
        if pending is None:
            pending = client.pending = deque()
        behind = len(pending)
        if (behind >= self._client_queue and client.sending) or behind >= MAX_PENDING:
            self._drop(client, CLOSE_SLOW, "too slow: send queue full")
            return
        pending.append(out)
        self._pump(client)

    def _pump(self, client: _Client) -> None:
        """Start the page's writer unless it runs already."""
        if client.writer is None and client.live and client.pending and not client.closing:
            client.writer = asyncio.create_task(self._writer(client))

    def _say(self, client: _Client, kind: str, message: dict[str, Any]) -> None:
        self._send(client, _Out(kind, "", encode(message)))

    def _drop(self, client: _Client, code: int, reason: str) -> asyncio.Task[Any] | None:
        """Close the page with `code`; the closing task (None: the page was closing)."""
        if client.closing:
            return None
        client.closing = True
        metrics.DROPPED.labels(_CLOSE_REASONS.get(code, str(code))).inc()
        log.info("dropping pop client of agent %s: %s", client.agent.id, reason)
        self._unregister(client)
        if client.writer is not None:
            client.writer.cancel()
        return self._spawn(self._close(client.ws, code, reason))

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
        """Send the page's queue in order, then end (`_pump` starts it again)."""
        try:
            await self._write_pending(client)
        finally:
            client.writer = None
            if not client.pending:
                client.pending = None

    async def _write_pending(self, client: _Client) -> None:
        while client.pending:
            out = client.pending.popleft()  # a deque while anything is queued
            text = out.text
            if out.card is not None and out.message is not None:
                card, route = await out.card.get()
                if client.closing:
                    return
                shown = self._view_card(client.agent, card)
                extra = {"route": route} if route else {}
                text = encode({**out.message, **extra, "customer": shown})
                if card is not None and shown is not None and self._card_seen is not None:
                    self._card_seen(client.agent.id, card.id, out.call_id, shown)
            assert text is not None
            client.sending = True
            try:
                await client.ws.send(text)
            except ConnectionClosed:
                return
            finally:
                client.sending = False
            metrics.SENT.labels(out.kind).inc()
            if out.started is not None and out.kind == "call.ringing":
                metrics.LATENCY.observe(time.perf_counter() - out.started)

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _index_device(self, client: _Client, *, remove: bool = False) -> None:
        device = client.agent.device
        if remove:
            pages = self._by_device.get(device)
            if pages is not None:
                pages.discard(client)
                if not pages:
                    del self._by_device[device]
        else:
            self._by_device.setdefault(device, set()).add(client)

    def _register(self, client: _Client) -> None:
        self._clients.setdefault(client.agent.id, set()).add(client)
        self._index_device(client)
        metrics.CONNECTED.inc()
        self._notify()

    def _unregister(self, client: _Client) -> None:
        clients = self._clients.get(client.agent.id)
        if clients is not None and client in clients:
            clients.discard(client)
            if not clients:
                del self._clients[client.agent.id]
            self._index_device(client, remove=True)
            metrics.CONNECTED.dec()
        for queue in client.queues or ():
            subs = self._subscribers.get(queue)
            if subs is not None:
                subs.discard(client)
                if not subs:
                    del self._subscribers[queue]
        client.queues = None
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

    async def _hello(self, ws: ServerConnection) -> tuple[Agent, str] | None:
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
            found = await self._sessions.authenticate(msg.token)
        except BridgeError as exc:
            log.warning("cannot authenticate a pop client: %s", exc)
            await self._close(ws, CLOSE_INTERNAL, "cannot check the token now; retry")
            return None
        if found is None:
            metrics.DROPPED.labels("auth").inc()
            await self._close(ws, CLOSE_AUTH, "wrong token")
            return None
        return found

    async def _serve(self, ws: ServerConnection) -> None:
        found = await self._hello(ws)
        if found is None:
            return
        agent, digest = found
        if not self._sessions.session_valid(agent.id, digest):  # revoked while we asked
            await self._close(ws, CLOSE_REVOKED, "token rotated or agent disabled")
            return
        client = _Client(ws, agent, digest)
        self._say(client, "welcome", {"type": "welcome", "agent": agent.id})
        # No await from here to registration: no event batch can slip in between.
        if self._live is not None:
            events = self._live.catch_up(agent.device)
            for pop in self._router.catch_up_device(agent.device, events):
                self._deliver(pop, None, only=client)
        if self._board is not None:
            state = self._board.status_of(agent.device)
            if state is not None:
                self._say(client, "status", _status(state[0], state[1]))
        if client.closing:
            return
        self._register(client)
        client.live = True
        self._pump(client)
        try:
            async for raw in ws:
                try:
                    msg = parse_client_message(raw)
                except PopProtocolError as exc:
                    closing = self._drop(client, exc.code, exc.reason)
                    if closing is not None:  # before returning: websockets would say 1000
                        await closing
                    break
                self._on_client_message(client, msg)
        except ConnectionClosed:
            pass
        finally:
            if not client.closing:
                client.closing = True
                self._unregister(client)
            await cancel_and_wait(client.writer)

    def _on_client_message(self, client: _Client, msg: Any) -> None:
        if isinstance(msg, Ping):
            self._say(client, "pong", {"type": "pong"})
        elif isinstance(msg, Hello):
            self._say(client, "error", _error("already_welcome", "already authenticated"))
        elif isinstance(msg, Subscribe):
            if client.agent.role not in FULL_ROLES:
                reason = "only supervisors and admins follow queues"
                self._say(client, "error", _error("forbidden", reason))
                return
            if client.queues is None:
                client.queues = set()
            if msg.queue not in client.queues:
                client.queues.add(msg.queue)
                self._subscribers.setdefault(msg.queue, set()).add(client)
            self._say(client, "subscribed", {"type": "subscribed", "queue": msg.queue})
            if self._live is not None:
                calls = self._live.snapshot()
                for pop in self._router.catch_up_queue(msg.queue, calls):
                    self._deliver(pop, None, only=client)
            if self._board is not None:
                try:
                    self._say(client, "queue.stats", self._board.message(msg.queue))
                except Exception:
                    log.exception("no figures for queue %s", msg.queue)
        elif isinstance(msg, Status):
            if self._board is None:
                reason = "pausing is not available: no link to the PBX"
                self._say(client, "error", _error("unavailable", reason))
                return
            agent_id = client.agent.id
            if agent_id in self._status_busy:  # one at a time per agent; the latest waits
                self._status_busy[agent_id] = (client, msg)
                return
            self._status_busy[agent_id] = None
            self._spawn(self._run_status(client, msg))
        elif isinstance(msg, Unsubscribe):
            if client.queues is not None:
                client.queues.discard(msg.queue)
            subs = self._subscribers.get(msg.queue)
            if subs is not None:
                subs.discard(client)
            self._say(client, "unsubscribed", {"type": "unsubscribed", "queue": msg.queue})

    async def _run_status(self, client: _Client, msg: Status) -> None:
        """Apply `msg`, then whatever status came meanwhile (only the latest: each one sets
        the whole state), so a flood of messages is at most one AMI pause in flight per agent.
        A waiting status of a page closed since (revoked, demoted, gone) is not applied."""
        agent_id = client.agent.id
        try:
            while True:
                if not client.closing and self._sessions.session_valid(agent_id, client.digest):
                    await self._set_status(client, msg)
                waiting = self._status_busy.get(agent_id)
                if waiting is None:
                    return
                self._status_busy[agent_id] = None
                client, msg = waiting
        finally:
            self._status_busy.pop(agent_id, None)

    async def _set_status(self, client: _Client, msg: Status) -> None:
        assert self._board is not None
        agent = client.agent
        try:
            await self._board.pause(agent.device, msg.paused, msg.reason)
        except BridgeError as exc:
            log.info("agent %s: %s failed: %s", agent.id, "pause" if msg.paused else "resume", exc)
            self._say(client, "error", _error("status_failed", str(exc)[:200]))
            return
        log.info("agent %s %s (%s)", agent.id, "paused" if msg.paused else "available", msg.reason)
        for page in list(self._clients.get(agent.id, ())):
            self._say(page, "status", _status(msg.paused, msg.reason))


def _status(paused: bool, reason: str) -> dict[str, Any]:
    return {"type": "status", "paused": paused, "reason": reason}


def _error(error: str, reason: str) -> dict[str, Any]:
    return {"type": "error", "error": error, "reason": reason}
