"""The FastAGI server under hostile peers, while ordinary calls keep being routed."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import asyncpg

from bridge.agi import AgiServer, AgiSession, RouteHandler
from bridge.agi.protocol import encode_set_variable
from tests.agi.client import header, play_asterisk
from tests.agi.conftest import RouteStack, agi_config
from tests.crm.fixture_crm import load_trace_crm
from tests.flood import wait_until

ALICE = {"BRIDGE_QUEUE": "senior", "BRIDGE_CUSTOMER_NAME": "Alice Chen", "BRIDGE_DEGRADED": "0"}


class Peer:
    """A raw TCP peer that does only what a test tells it to."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, *, rcvbuf: int | None = None) -> Peer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        except BaseException:
            sock.close()
            raise
        reader, writer = await asyncio.open_connection(sock=sock)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def closed_by_server(self, timeout_s: float = 20.0) -> bytes:
        """Everything the server sent until it closed the connection."""
        async with asyncio.timeout(timeout_s):
            received = b""
            while chunk := await self.reader.read(65536):
                received += chunk
            return received

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def alice(result: Any) -> bool:
    return all(result.variables.get(k) == v for k, v in ALICE.items())


async def test_hostile_headers_end_in_a_closed_session_or_the_default_route(
    stack: RouteStack, pool: asyncpg.Pool[Any]
) -> None:
    await load_trace_crm(pool)
    forged = header(calleridname="x\nagi_network_script: admin")
    bad_headers = {
        "forged duplicate key": forged,
        "thousand lines": b"".join(f"agi_k{i}: v\n".encode() for i in range(1000)) + b"\n",
        "header over 64 KiB": header(calleridname="x" * 70_000),
        "not agi lines": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "unknown script": header(network_script="admin", request="agi://h/admin"),
        "NUL line": b"\x00\x00\x00\n\n",
    }
    for what, data in bad_headers.items():
        peer = await Peer.connect(stack.port)
        try:
            await peer.send(data)
            assert await peer.closed_by_server() == b"", what
        finally:
            await peer.close()
    assert stack.server.errors["header"] == 5
    assert stack.server.errors["unknown_script"] == 1

    # Values that are ugly but legal still route by the caller's number.
    for name in [
        "a\rb\x00c",
        '"quoted" and \\back\\slashes\\',
        "x" * 10_000,
        "x" * 20_000,  # cut to agi.protocol.MAX_ENV_VALUE, not a dropped session
        "Jos\udcff",  # see below: sent as invalid UTF-8
    ]:
        data = header(calleridname="NAME").replace(b"NAME", name.encode("utf-8", "surrogateescape"))
        result = await play_asterisk(stack.port, data, linkedid="1.1")
        assert alice(result), name


async def test_stalled_and_greedy_peers_do_not_stop_other_calls(
    stack: RouteStack, pool: asyncpg.Pool[Any]
) -> None:
    await load_trace_crm(pool)
    full = header()
    cut_off = await Peer.connect(stack.port)
    no_blank_line = await Peer.connect(stack.port)
    never_replies = await Peer.connect(stack.port, rcvbuf=1024)
    trickle = await Peer.connect(stack.port)
    peers = [cut_off, no_blank_line, never_replies, trickle]
    try:
        await cut_off.send(full[:40])
        cut_off.writer.write_eof()
        await no_blank_line.send(full[:-1])
        await never_replies.send(full)  # then neither reads nor answers
        await trickle.send(full[:10])
        # Meanwhile, ordinary calls are routed.
        results = await asyncio.gather(
            *(play_asterisk(stack.port, full, linkedid=f"7.{i}") for i in range(5))
        )
        assert all(alice(r) for r in results)
        # The stalled ones are still open right now, though only one is a session.
        assert stack.server.connections >= 3
        # And every hostile session ends with the server closing it.
        for peer in peers:
            await peer.closed_by_server()
    finally:
        for peer in peers:
            await peer.close()
    assert stack.server.connections == 0
    assert stack.server.errors.get("timeout", 0) >= 3


async def test_a_peer_that_never_reads_cannot_pin_a_session() -> None:
    """Small receive buffer, a handler writing without end: the write times out, session closed."""
    writes = 0

    async def flood(session: AgiSession) -> None:
        nonlocal writes
        command = encode_set_variable("X", "v" * 1000)
        for _ in range(200_000):
            await session.write(command)
            writes += 1

    config = agi_config()

    class QuickRouter:
        async def route(self, call: Any, deadline: float | None = None) -> Any:
            from bridge.models import Decision

            return Decision("q", 1, "r", None)

        async def record(self, call: Any, decision: Any, recording: str | None) -> None:
            return None

    server = AgiServer(
        {"flood": flood, "route": RouteHandler(QuickRouter(), config)},
        port=0,
        read_timeout_s=2.0,
        write_timeout_s=0.5,
    )
    await server.start()
    greedy = await Peer.connect(server.port, rcvbuf=1024)
    try:
        await greedy.send(header(network_script="flood"))
        ok = await play_asterisk(server.port, header(), linkedid="1.1")
        assert ok.variables["BRIDGE_QUEUE"] == "q"
        # The server gives up on the greedy peer: its socket is aborted, reading ends.
        with contextlib.suppress(ConnectionResetError):
            await greedy.closed_by_server(timeout_s=30)
    finally:
        await greedy.close()
        await server.stop()
    assert 0 < writes < 200_000
    assert server.errors["timeout"] == 1
    assert server.active == 0


async def test_sessions_beyond_the_limit_are_closed_once_their_header_arrives() -> None:
    started = asyncio.Event()

    async def idle(session: AgiSession) -> None:
        started.set()
        await asyncio.Event().wait()

    server = AgiServer({"idle": idle}, port=0, max_sessions=2, read_timeout_s=5.0)
    await server.start()
    peers = [await Peer.connect(server.port) for _ in range(3)]
    try:
        for peer in peers[:2]:
            started.clear()
            await peer.send(header(network_script="idle"))
            await started.wait()
        assert server.active == 2
        await peers[2].send(header(network_script="idle"))
        assert await peers[2].closed_by_server() == b""
        assert server.rejected == 1
        health = server.health()
        assert health.state == "up"
        assert {k: v for k, v in health.detail.items() if k != "connections"} == {
            "port": server.port,
            "sessions": 2,
            "served": 0,
            "rejected": 1,
            "errors": {"overload": 1},
        }
        assert health.detail["connections"]["open"] == 2
        await server.stop()  # cuts the idle sessions after the grace period
        for peer in peers[:2]:
            await peer.closed_by_server()
        assert server.health().state == "down"
    finally:
        for peer in peers:
            await peer.close()
        await server.stop()


async def test_a_hangup_from_the_pbx_stops_the_variables(stack: RouteStack) -> None:
    peer = await Peer.connect(stack.port)
    try:
        await peer.send(header())
        assert await peer.reader.readline() == b"GET VARIABLE CHANNEL(linkedid)\n"
        await peer.send(b"HANGUP\n200 result=1 (1.1)\n")
        assert await peer.closed_by_server() == b""  # the channel is gone: nothing to set
    finally:
        await peer.close()


async def test_a_dead_channel_reply_stops_the_variables(stack: RouteStack) -> None:
    peer = await Peer.connect(stack.port)
    try:
        await peer.send(header())
        await peer.reader.readline()
        await peer.send(b"200 result=1 (1.1)\n")
        assert (await peer.reader.readline()).startswith(b"SET VARIABLE BRIDGE_QUEUE ")
        await peer.send(b"511 Command Not Permitted on a dead channel or intercept routine\n")
        assert await peer.closed_by_server() == b""
    finally:
        await peer.close()


async def test_garbage_replies_close_the_session(stack: RouteStack) -> None:
    for garbage in [b"hello\n", b"200 result=oops\n", b"200 result=1 (" + b"x" * 9000]:
        peer = await Peer.connect(stack.port)
        try:
            await peer.send(header())
            await peer.reader.readline()
            await peer.send(garbage)
            assert await peer.closed_by_server() == b""
        finally:
            await peer.close()
    assert stack.server.errors["protocol"] == 3


async def test_a_late_linkedid_reply_is_skipped_and_the_uniqueid_names_the_recording() -> None:
    class QuickRouter:
        async def route(self, call: Any, deadline: float | None = None) -> Any:
            from bridge.models import Decision

            return Decision("q", 2, "r", None)

        async def record(self, call: Any, decision: Any, recording: str | None) -> None:
            return None

    config = agi_config(budget_ms=100)
    server = AgiServer({"route": RouteHandler(QuickRouter(), config)}, port=0, read_timeout_s=4)
    await server.start()
    peer = await Peer.connect(server.port)
    try:
        await peer.send(header(uniqueid="3.3"))
        assert await peer.reader.readline() == b"GET VARIABLE CHANNEL(linkedid)\n"
        # No answer until the server has given up on it and moved on to the variables.
        first_set = await peer.reader.readline()
        assert first_set == b'SET VARIABLE BRIDGE_QUEUE "q"\n'
        await peer.send(b"200 result=1 (too.late)\n200 result=1\n")
        variables = {}
        while line := await peer.reader.readline():
            name, value = line.decode().split(" ", 3)[2:]
            variables[name] = value.strip().strip('"')
            await peer.send(b"200 result=1\n")
    finally:
        await peer.close()
        await server.stop()
    assert variables["BRIDGE_RECORDING"] == "3.3.wav"
    assert variables["BRIDGE_PRIORITY"] == "2"
    assert len(variables) == 7  # the eight variables, BRIDGE_QUEUE read above
    assert server.errors == {}

    # Replies stay paired with their commands: the 510 is BRIDGE_QUEUE's, not the late 200.
    await server.start()
    peer = await Peer.connect(server.port)
    try:
        await peer.send(header(uniqueid="3.4"))
        await peer.reader.readline()
        assert (await peer.reader.readline()).startswith(b"SET VARIABLE BRIDGE_QUEUE ")
        await peer.send(b"200 result=1 (too.late)\n510 Invalid or unknown command\n")
        assert await peer.closed_by_server() == b""
    finally:
        await peer.close()
        await server.stop()


async def test_a_peer_outside_agi_allow_is_closed_before_its_header_is_read() -> None:
    routed = 0

    async def route(session: AgiSession) -> None:
        nonlocal routed
        routed += 1

    server = AgiServer({"route": route}, port=0, allow=["10.0.0.0/8", "2001:db8::/32"])
    await server.start()
    try:
        peer = await Peer.connect(server.port)
        try:
            with contextlib.suppress(ConnectionResetError):  # a reset is as good as closed
                await peer.send(header())
                assert await peer.closed_by_server() == b""
        finally:
            await peer.close()
        await wait_until(lambda: server.guard.seen == 1)
        assert server.guard.refused == {"not_allowed": 1}
        assert routed == 0 and server.errors == {}
    finally:
        await server.stop()
