"""`ConnectionGuard`: the per-port limits, applied between asyncio's server and the real protocol.

The guard wraps a protocol factory (`guard.wrap(factory)`), so every accepted socket first
meets a thin proxy protocol that decides, before the real protocol exists:

- a peer outside `allow` is closed at once, before a byte is read (`not_allowed`);
- at most `max_connections` are open: one port's clients cannot take the file descriptors
  FastAGI, pops and `/healthz` need;
- at most `max_pending` have not ended their header. The header ends at the first empty line
  after some text, which is the end of an HTTP request head, of a websocket handshake and of
  a FastAGI environment alike. When the pending slots (or all slots) are full, the *oldest*
  pending connection is cut to make room (`evicted`): idle or trickling sockets cannot lock
  out real clients, whose header arrives within a round trip. Only when every slot is held by
  a connection past its header is the new one refused (`over_capacity`);
- a pending connection silent for `first_byte_timeout_s`, or without a complete header after
  `header_timeout_s`, is cut.

Every refusal or cut is counted (`crm_bridge_connections_refused_total{listener,reason}`) and
logged once per episode (`EpisodeLog`). The real protocol of a cut connection sees
`connection_lost(ConnectionCut(reason))`, an `OSError`, so readers fail as on a reset.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, cast

from bridge.netguard import metrics
from bridge.netguard.allow import Network, is_allowed, peer_address
from bridge.netguard.episodes import EpisodeLog

log = logging.getLogger(__name__)

ProtocolFactory = Callable[[], asyncio.BaseProtocol]

NOT_ALLOWED = "not_allowed"
OVER_CAPACITY = "over_capacity"
EVICTED = "evicted"
FIRST_BYTE_TIMEOUT = "first_byte_timeout"
HEADER_TIMEOUT = "header_timeout"


class ConnectionCut(ConnectionAbortedError):
    """The guard closed this connection; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"connection cut by the guard: {reason}")
        self.reason = reason


class HeaderEnd:
    """Finds the end of a header block: the first empty line after a non-empty one.

    Empty lines before any text do not count (RFC 9112 §2.2 lets a server skip them before
    the request line), so `\\r\\n\\r\\n` alone does not make a connection look established.
    """

    def __init__(self) -> None:
        self._tail = b""
        self._text = False

    def feed(self, data: bytes) -> bool:
        if not self._text:
            data = data.lstrip(b"\r\n")
            if not data:
                return False
            self._text = True
        # The end may straddle chunks: look at the last two bytes before this one and this
        # chunk's first two, then inside the chunk itself (no copy of the whole chunk).
        if self._tail:
            edge = self._tail + data[:2]
            if b"\n\n" in edge or b"\n\r\n" in edge:
                return True
        if b"\n\n" in data or b"\n\r\n" in data:
            return True
        self._tail = (self._tail + data)[-2:] if len(data) < 2 else data[-2:]
        return False


class Ticket:
    """One admitted connection as the guard tracks it."""

    __slots__ = (
        "cut_reason",
        "header",
        "header_by",
        "peer",
        "pending",
        "silent",
        "timer",
        "transport",
    )

    def __init__(self, transport: asyncio.Transport, peer: str) -> None:
        self.transport = transport
        self.peer = peer
        self.pending = True
        self.silent = True
        self.cut_reason: str | None = None
        # One timer per connection: at the first-byte deadline, then (re-armed) at the
        # header's; a connection whose header arrives in time cancels it unfired.
        self.timer: asyncio.TimerHandle | None = None
        self.header_by: float | None = None  # event-loop time the header is due
        self.header = HeaderEnd()


class _Guarded(asyncio.Protocol):
    """The proxy protocol: admission, then every call passed to the real protocol."""

    def __init__(self, guard: ConnectionGuard, factory: ProtocolFactory) -> None:
        self._guard = guard
        self._factory = factory
        self._ticket: Ticket | None = None
        self._inner: asyncio.Protocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._ticket = self._guard.admit(cast(asyncio.Transport, transport))
        if self._ticket is None:
            return
        inner = self._factory()
        assert isinstance(inner, asyncio.Protocol), "the guard needs a streaming protocol"
        self._inner = inner
        inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is None or self._ticket is None or self._ticket.cut_reason is not None:
            return
        self._guard.received(self._ticket, data)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._ticket is None:
            return
        exc = self._guard.lost(self._ticket, exc)
        if self._inner is not None:
            inner, self._inner = self._inner, None
            inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class ConnectionGuard:
    """The limits of one listening port; see the module docstring."""

    def __init__(
        self,
        name: str,
        *,
        max_connections: int,
        max_pending: int | None = None,
        first_byte_timeout_s: float | None = None,
        header_timeout_s: float | None = None,
        allow: Sequence[Network] | None = None,
        quiet_s: float = 10.0,
    ) -> None:
        if max_connections <= 0 or (max_pending is not None and max_pending <= 0):
            raise ValueError("connection limits must be positive")
        self.name = name
        self.max_connections = max_connections
        self.max_pending = min(max_pending or max_connections, max_connections)
        self.first_byte_timeout_s = first_byte_timeout_s
        self.header_timeout_s = header_timeout_s
        self.allow = tuple(allow) if allow is not None else None
        self._pending: dict[Ticket, None] = {}  # admission order: the oldest first
        self._established: set[Ticket] = set()
        self.refused: Counter[str] = Counter()
        self.seen = 0  # connections accepted from the kernel, admitted or not
        self.episodes = EpisodeLog(log, f"{name} port", quiet_s=quiet_s)
        # The gauges change on every connection: their labelled children looked up once.
        self._open_pending = metrics.OPEN.labels(name, "pending")
        self._open_established = metrics.OPEN.labels(name, "established")

    def wrap(self, factory: ProtocolFactory) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for `loop.create_server` that applies this guard to `factory`'s."""

        def guarded() -> asyncio.Protocol:
            return _Guarded(self, factory)

        return guarded

    @property
    def open(self) -> int:
        return len(self._pending) + len(self._established)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def snapshot(self) -> dict[str, Any]:
        """For health details: what is open now, and how many were refused, by reason."""
        return {
            "open": self.open,
            "pending": self.pending,
            "max_connections": self.max_connections,
            "refused": dict(self.refused),
        }

    def close(self) -> None:
        """Sum up an open episode (the port stops; its connections are closed by their owner)."""
        for ticket in list(self._pending):
            self._cancel_timers(ticket)
        self.episodes.close()

    # --- one connection's life: admit, received, lost ---------------------------------

    def admit(self, transport: asyncio.Transport) -> Ticket | None:
        """Decide on a new connection. None: refused, its transport aborted before reading."""
        self.seen += 1
        address = peer_address(transport.get_extra_info("peername"))
        peer = str(address) if address is not None else "?"
        if self.allow is not None and not is_allowed(address, self.allow):
            self._refuse(transport, peer, NOT_ALLOWED)
            return None
        if len(self._pending) >= self.max_pending or self.open >= self.max_connections:
            if not self._pending:
                self._refuse(transport, peer, OVER_CAPACITY)
                return None
            self._cut(next(iter(self._pending)), EVICTED)
        ticket = Ticket(transport, peer)
        self._pending[ticket] = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self.header_timeout_s is not None:
            ticket.header_by = now + self.header_timeout_s
        first_byte = self.first_byte_timeout_s
        if first_byte is not None and (
            ticket.header_by is None or now + first_byte < ticket.header_by
        ):
            ticket.timer = loop.call_at(now + first_byte, self._expire, ticket, FIRST_BYTE_TIMEOUT)
        elif ticket.header_by is not None:
            ticket.timer = loop.call_at(ticket.header_by, self._expire, ticket, HEADER_TIMEOUT)
        self._gauges()
        return ticket

    def received(self, ticket: Ticket, data: bytes) -> None:
        """Bytes arrived: the first one stops the first-byte clock, the header's end all."""
        if not ticket.pending or not data:
            return
        ticket.silent = False
        if ticket.header.feed(data):
            self._cancel_timers(ticket)
            ticket.pending = False
            self._pending.pop(ticket, None)
            self._established.add(ticket)
            self._gauges()

    def lost(self, ticket: Ticket, exc: Exception | None) -> Exception | None:
        """The connection closed; the exception its protocol should see (ConnectionCut when
        the guard cut it)."""
        self._cancel_timers(ticket)
        was_open = self._pending.pop(ticket, False) is None or ticket in self._established
        self._established.discard(ticket)
        if was_open:
            self._gauges()
        if exc is None and ticket.cut_reason is not None:
            return ConnectionCut(ticket.cut_reason)
        return exc

    # --- refusing -----------------------------------------------------------------------

    def _expire(self, ticket: Ticket, reason: str) -> None:
        ticket.timer = None
        if not ticket.pending:
            return
        if reason == FIRST_BYTE_TIMEOUT and not ticket.silent:
            if ticket.header_by is not None:  # bytes came: now the header's deadline
                loop = asyncio.get_running_loop()
                ticket.timer = loop.call_at(ticket.header_by, self._expire, ticket, HEADER_TIMEOUT)
            return
        self._cut(ticket, reason)

    def _cut(self, ticket: Ticket, reason: str) -> None:
        """Close an admitted, still pending connection now; its protocol sees ConnectionCut."""
        self._cancel_timers(ticket)
        ticket.pending = False
        ticket.cut_reason = reason
        self._pending.pop(ticket, None)
        self._record(reason, ticket.peer)
        ticket.transport.abort()
        self._gauges()

    def _refuse(self, transport: asyncio.Transport, peer: str, reason: str) -> None:
        """Close a connection at once, before reading; the real protocol never exists."""
        self._record(reason, peer)
        transport.abort()

    def _record(self, reason: str, peer: str) -> None:
        self.refused[reason] += 1
        metrics.REFUSED.labels(self.name, reason).inc()
        self.episodes.note(reason, peer)

    def _cancel_timers(self, ticket: Ticket) -> None:
        if ticket.timer is not None:
            ticket.timer.cancel()
            ticket.timer = None

    def _gauges(self) -> None:
        self._open_pending.set(len(self._pending))
        self._open_established.set(len(self._established))
