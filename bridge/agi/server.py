"""The FastAGI server: an asyncio adapter that only moves bytes between sockets and
`bridge.agi.protocol`, and hands each session to the handler of its script.

Hardening, because anything on the network may connect:
- a `ConnectionGuard` (bridge.netguard) stands before the header: peers outside
  `[agi] allow` are closed before a byte is read; a socket silent for
  `[agi] first_byte_timeout_s`, or whose header is not complete within `[agi] read_timeout_s`
  (a slow trickle), is cut; at most `[agi] max_pending` sockets wait for their header, the
  oldest dropped first when full, so idle sockets never hold a session slot;
- each reply must arrive within `[agi] read_timeout_s`;
- every write is drained under a timeout, so a peer that never reads cannot pin us;
- at most `[agi] max_sessions` sessions at once, counted from a complete header; beyond that
  the session is closed at once;
- refusals are logged once per episode, not per connection;
- no error in a session reaches the server, and every session ends by closing its socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from bridge.agi import metrics
from bridge.agi.protocol import MAX_ENV_VALUE, AgiEnv, EnvParser, Reply, ReplyParser
from bridge.component import Health
from bridge.errors import AgiProtocolError, ConfigError, UnsafeValueError
from bridge.netguard import LOOPBACK, ConnectionCut, ConnectionGuard, EpisodeLog, parse_allow
from bridge.netguard.guard import EVICTED

log = logging.getLogger(__name__)

READ_CHUNK = 4096


class AgiSession:
    """One connected FastAGI session as a handler sees it."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        env: AgiEnv,
        rest: bytes,
        *,
        read_timeout_s: float,
        write_timeout_s: float,
    ) -> None:
        self.env = env
        self.peer = writer.get_extra_info("peername")
        self._reader = reader
        self._writer = writer
        self._replies = ReplyParser()
        self._replies.feed(rest)
        self._ready: list[Reply] = []
        self._owed = 0  # replies to commands whose caller stopped waiting for them
        self.read_timeout_s = read_timeout_s
        self.write_timeout_s = write_timeout_s
        # One timer per session for every reply's deadline (see `_next_reply`).
        self._reply_by = 0.0  # event-loop time the awaited reply is due
        self._timer: asyncio.TimerHandle | None = None
        self._waiting: asyncio.Task[object] | None = None  # the task reading a reply
        self._expired = False

    @property
    def hangup(self) -> bool:
        """Asterisk said `HANGUP`: the channel is gone (commands now get 511)."""
        return self._replies.hangup

    async def write(self, data: bytes) -> None:
        """Send bytes; raises TimeoutError if the peer does not take them in time."""
        self._writer.write(data)
        if self._writer.transport.get_write_buffer_size():  # the kernel did not take it all
            async with asyncio.timeout(self.write_timeout_s):
                await self._writer.drain()

    async def command(self, data: bytes, *, timeout_s: float | None = None) -> Reply:
        """Send one encoded command and return its reply.

        If the reply is late (TimeoutError), the session remembers it owes one reply, and
        the next command skips it first: replies come in command order.
        """
        self._owed += 1  # once written, even late, the PBX will answer it
        await self.write(data)
        while self._owed > 1:
            await self._next_reply(self.read_timeout_s)
            self._owed -= 1
        reply = await self._next_reply(self.read_timeout_s if timeout_s is None else timeout_s)
        self._owed -= 1
        return reply

    async def _next_reply(self, timeout_s: float) -> Reply:
        self._ready.extend(self._replies.replies())
        if not self._ready:
            await self._read_reply(max(0.0, timeout_s))
        return self._ready.pop(0)

    async def _read_reply(self, timeout_s: float) -> None:
        """Read until a reply is complete; TimeoutError after `timeout_s`.

        Like `asyncio.timeout`, but one timer serves the whole session: a later deadline
        only moves `_reply_by`, and the timer, when it fires early, re-arms itself there.
        A session that answers in time costs one timer, not one per command.
        """
        loop = asyncio.get_running_loop()
        self._reply_by = loop.time() + timeout_s
        if self._timer is None or self._timer.when() > self._reply_by:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(self._reply_by, self._on_timer)
        self._waiting = asyncio.current_task()
        try:
            while not self._ready:
                data = await self._reader.read(READ_CHUNK)
                if not data:
                    raise AgiProtocolError("the PBX closed the session before replying")
                self._replies.feed(data)
                self._ready.extend(self._replies.replies())
        except asyncio.CancelledError:
            if self._expired and self._waiting is not None and self._waiting.uncancel() == 0:
                raise TimeoutError from None
            raise
        finally:
            self._waiting = None
            self._expired = False

    def _on_timer(self) -> None:
        self._timer = None
        if self._waiting is None or self._expired:
            return  # no reply awaited (the next one arms the timer again), or already cut
        loop = asyncio.get_running_loop()
        if loop.time() < self._reply_by:
            self._timer = loop.call_at(self._reply_by, self._on_timer)
            return
        self._expired = True
        self._waiting.cancel()

    def close(self) -> None:
        """Stop the session's timer (the server calls this when the session ends)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


Handler = Callable[[AgiSession], Awaitable[None]]


class AgiServer:
    """Component: FastAGI on `host:port`, dispatching sessions by script name."""

    name = "agi"

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        *,
        host: str = "127.0.0.1",
        port: int = 4573,
        read_timeout_s: float = 5.0,
        write_timeout_s: float | None = None,
        max_sessions: int = 1000,
        stop_grace_s: float = 5.0,
        allow: Sequence[str] = LOOPBACK,
        first_byte_timeout_s: float = 2.0,
        max_pending: int = 256,
        quiet_s: float = 10.0,
    ) -> None:
        self._handlers = dict(handlers)
        # Counted on every session: each script's labelled child looked up once.
        self._session_counts = {script: metrics.SESSIONS.labels(script) for script in handlers}
        self._host = host
        self._port = port
        self._read_timeout_s = read_timeout_s
        self._write_timeout_s = write_timeout_s if write_timeout_s is not None else read_timeout_s
        self._max_sessions = max_sessions
        self._stop_grace_s = stop_grace_s
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()  # every open socket's task
        self._sessions: set[asyncio.Task[None]] = set()  # those past their header
        # Sessions are capped separately, so the guard admits pending plus sessions.
        self.guard = ConnectionGuard(
            "agi",
            max_connections=max_pending + max_sessions,
            max_pending=max_pending,
            first_byte_timeout_s=first_byte_timeout_s,
            header_timeout_s=read_timeout_s,
            allow=parse_allow(allow, "agi.allow"),
            quiet_s=quiet_s,
        )
        self._full = EpisodeLog(log, "FastAGI sessions full", quiet_s=quiet_s)
        self.served = 0
        self.rejected = 0
        self.errors: dict[str, int] = {}

    @property
    def port(self) -> int:
        """The bound port (the real one when configured with 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def active(self) -> int:
        """Sessions: connections whose header has arrived."""
        return len(self._sessions)

    @property
    def connections(self) -> int:
        """Every open connection, sessions and those still before their header."""
        return len(self._connections)

    def _protocol(self) -> asyncio.StreamReaderProtocol:
        reader = asyncio.StreamReader(limit=READ_CHUNK * 4)
        return asyncio.StreamReaderProtocol(reader, self._accept)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                self.guard.wrap(self._protocol), self._host, self._port
            )
        except OSError as exc:
            where = f"{self._host}:{self._port}"
            raise ConfigError("agi.port", f"cannot listen on {where}: {exc}") from exc
        log.info("FastAGI listening on %s:%d", self._host, self.port)

    async def stop(self) -> None:
        """Stop accepting; let open sessions finish for a moment, then cut them."""
        if self._server is not None:
            self._server.close()
        if self._sessions:
            await asyncio.wait(list(self._sessions), timeout=self._stop_grace_s)
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self.guard.close()
        self._full.close()

    def health(self) -> Health:
        serving = self._server is not None and self._server.is_serving()
        return Health(
            "up" if serving else "down",
            detail={
                "port": self.port,
                "sessions": self.active,
                "served": self.served,
                "rejected": self.rejected,
                "errors": dict(self.errors),
                "connections": self.guard.snapshot(),
            },
        )

    def _error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        metrics.ERRORS.labels(kind).inc()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            # stop() cuts the connection. The task ends normally: asyncio 3.11's stream
            # callback reads a cancelled task's exception and logs it as an error.
            pass
        finally:
            self._connections.discard(task)
            await self._close(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            env, rest = await self._read_header(reader)
        except AgiProtocolError as exc:
            self._error("header")
            log.warning("FastAGI %s: bad header: %s", peer, exc)
            return
        except ConnectionCut as exc:  # idle, too slow or evicted: the guard logged it
            self._error("evicted" if exc.reason == EVICTED else "timeout")
            return
        except OSError as exc:
            self._error("closed")
            log.debug("FastAGI %s: connection lost during the header: %s", peer, exc)
            return
        if env.truncated:
            log.info(
                "FastAGI %s: oversized %s cut to %d characters; routing goes on",
                peer,
                ", ".join(f"agi_{k}" for k in sorted(env.truncated)),
                MAX_ENV_VALUE,
            )
        if len(self._sessions) >= self._max_sessions:
            self.rejected += 1
            self._error("overload")
            self._full.note("overload", str(peer[0]) if isinstance(peer, tuple) else "")
            return
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        metrics.ACTIVE.inc()
        try:
            await self._run(env, rest, reader, writer)
        finally:
            self._sessions.discard(task)
            metrics.ACTIVE.dec()

    async def _run(
        self, env: AgiEnv, rest: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        script = env.script
        handler = self._handlers.get(script)
        if handler is None:
            self._error("unknown_script")
            log.warning("FastAGI %s: unknown script %r, session closed", peer, script[:80])
            return
        self._session_counts[script].inc()
        session = AgiSession(
            reader,
            writer,
            env,
            rest,
            read_timeout_s=self._read_timeout_s,
            write_timeout_s=self._write_timeout_s,
        )
        try:
            await handler(session)
            self.served += 1
        except TimeoutError:
            self._error("timeout")
            log.warning("FastAGI %s %s: the PBX was too slow to read or reply", peer, script)
        except AgiProtocolError as exc:
            self._error("protocol")
            log.warning("FastAGI %s %s: %s", peer, script, exc)
        except UnsafeValueError as exc:
            self._error("command")
            log.error("FastAGI %s %s: refused to send: %s", peer, script, exc)
        except OSError as exc:
            self._error("closed")
            log.info("FastAGI %s %s: connection lost: %s", peer, script, exc)
        except Exception:
            self._error("handler")
            log.exception("FastAGI %s %s: handler failed", peer, script)
        finally:
            session.close()

    async def _read_header(self, reader: asyncio.StreamReader) -> tuple[AgiEnv, bytes]:
        """The environment; its deadlines are the guard's, which cuts the socket."""
        parser = EnvParser()
        while True:
            data = await reader.read(READ_CHUNK)
            if not data:
                raise AgiProtocolError("connection closed before the header ended")
            env = parser.feed(data)
            if env is not None:
                return env, parser.rest

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        """Close the socket; a peer that does not take the last bytes is cut off."""
        writer.close()
        try:
            if not writer.transport.get_write_buffer_size():
                # Nothing left to send: the transport reports itself lost on the next loop
                # iteration, so no timer is needed to bound the wait.
                await writer.wait_closed()
                return
            async with asyncio.timeout(self._write_timeout_s):
                await writer.wait_closed()
        except (TimeoutError, OSError):
            writer.transport.abort()
        except asyncio.CancelledError:
            writer.transport.abort()
            raise
