"""The connection guard: allow lists, caps with oldest-pending eviction, deadlines, and
refusals logged once per episode; over real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import resource
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import pytest
from prometheus_client import REGISTRY
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from bridge.config import build_config
from bridge.errors import ConfigError
from bridge.netguard import (
    LOOPBACK,
    ConnectionCut,
    ConnectionGuard,
    EpisodeLog,
    HeaderEnd,
    is_allowed,
    parse_allow,
    peer_address,
    raise_open_files_limit,
)
from bridge.netguard.ws import guarded_connection
from bridge.runtime import open_files_needed
from tests.flood import close_sockets, open_sockets, wait_until

# --- allow lists ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (list(LOOPBACK), ["127.0.0.0/8", "::1/128"]),
        (["10.0.0.20"], ["10.0.0.20/32"]),
        ([" 10.0.0.0/8 ", "2001:db8::/32"], ["10.0.0.0/8", "2001:db8::/32"]),
        (["0.0.0.0/0", "::/0"], ["0.0.0.0/0", "::/0"]),
    ],
)
def test_allow_lists_parse_addresses_and_cidrs(values: list[str], expected: list[str]) -> None:
    assert [str(n) for n in parse_allow(values, "agi.allow")] == expected


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["10.0.0.5/24"],  # host bits: probably not what was meant
        ["asterisk"],
        ["1.2.3.4/33"],
        ["1.2.3.4\r\nagi_network_script: admin"],
        ["\x00"],
        ["x" * 100_000],
        ["' OR 1=1 --"],
        ["<script>alert(1)</script>"],
        ["fe80::1%eth0"],
        ["10.0.0.1", 5],
        "10.0.0.1",  # a string, not a list
    ],
)
def test_a_hostile_allow_value_is_a_config_error_naming_the_key(values: Any) -> None:
    with pytest.raises(ConfigError) as info:
        parse_allow(values, "agi.allow")
    assert info.value.key == "agi.allow"
    assert "\n" not in str(info.value) and "\x00" not in str(info.value)
    assert len(str(info.value)) < 300


@pytest.mark.parametrize(
    ("values", "env"),
    [
        ({"agi": {"allow": ["10.0.0.0/8", "asterisk.local"]}}, {}),
        ({}, {"CRM_BRIDGE_AGI_ALLOW": "10.0.0.0/8,\x00evil\r\n"}),
        ({}, {"CRM_BRIDGE_AGI_ALLOW": ""}),
        ({"agi": {"allow": "127.0.0.1"}}, {}),
    ],
)
def test_a_bad_agi_allow_stops_start_up_naming_the_key(values: dict, env: dict) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(values, env, runtime=False)
    assert info.value.key == "agi.allow"


def test_the_allow_list_defaults_to_loopback_and_the_environment_overrides_it() -> None:
    assert build_config({}, {}, runtime=False).agi.allow == ["127.0.0.0/8", "::1"]
    config = build_config({}, {"CRM_BRIDGE_AGI_ALLOW": "10.0.0.20, 2001:db8::/32"}, runtime=False)
    assert config.agi.allow == ["10.0.0.20", "2001:db8::/32"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("agi.first_byte_timeout_s", 0),
        ("agi.first_byte_timeout_s", float("nan")),
        ("agi.max_pending", 0),
        ("http.max_connections", -1),
        ("http.max_connections", 10**9),
        ("http.header_timeout_s", float("inf")),
        ("pops.max_connections", 0),
    ],
)
def test_connection_limits_out_of_range_name_their_key(key: str, value: Any) -> None:
    section, name = key.split(".")
    with pytest.raises(ConfigError) as info:
        build_config({section: {name: value}}, {}, runtime=False)
    assert info.value.key == key


LOOPBACK_NETS = parse_allow(list(LOOPBACK), "agi.allow")
TEN = parse_allow(["10.0.0.0/8", "2001:db8::/32"], "agi.allow")


@pytest.mark.parametrize(
    ("peername", "networks", "allowed"),
    [
        (("127.0.0.1", 40000), LOOPBACK_NETS, True),
        (("127.9.9.9", 40000), LOOPBACK_NETS, True),
        (("::1", 40000, 0, 0), LOOPBACK_NETS, True),
        (("::ffff:127.0.0.1", 40000, 0, 0), LOOPBACK_NETS, True),  # dual-stack listener
        (("10.0.0.1", 40000), LOOPBACK_NETS, False),
        (("::ffff:10.0.0.1", 40000, 0, 0), LOOPBACK_NETS, False),
        (("::2", 40000, 0, 0), LOOPBACK_NETS, False),
        (("10.200.0.1", 40000), TEN, True),
        (("::ffff:10.0.0.1", 40000, 0, 0), TEN, True),
        (("2001:db8::5", 40000, 0, 0), TEN, True),
        (("2001:db9::5", 40000, 0, 0), TEN, False),
        (("127.0.0.1", 40000), TEN, False),
        ("/run/agi.sock", LOOPBACK_NETS, False),  # no address: never allowed
        (None, LOOPBACK_NETS, False),
        (("not an address", 1), LOOPBACK_NETS, False),
    ],
)
def test_peers_are_matched_against_the_allow_list(
    peername: Any, networks: Any, allowed: bool
) -> None:
    assert is_allowed(peer_address(peername), networks) is allowed


def test_a_scoped_ipv6_peer_is_matched_by_its_address() -> None:
    assert peer_address(("fe80::1%eth0", 1, 0, 2)) == ipaddress.ip_address("fe80::1")


# --- the end of a header ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunks", "ended"),
    [
        ([b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"], True),
        ([b"GET / HTTP/1.1\r\nHost: x\r", b"\n", b"\r", b"\n"], True),
        ([b"agi_network: yes\n", b"agi_request: agi://h/route\n", b"\n"], True),
        ([b"GET / HTTP/1.1\r\nHost: x\r\n"], False),
        ([b"\r\n\r\n", b"\n\n"], False),  # empty lines before any text do not count
        ([b"\r\n", b"GET / HTTP/1.1\r\n\r\n"], True),
        ([b"x"], False),
    ],
)
def test_a_header_ends_at_the_first_empty_line_after_some_text(
    chunks: list[bytes], ended: bool
) -> None:
    header = HeaderEnd()
    assert any([header.feed(chunk) for chunk in chunks]) is ended


# --- episodes ---------------------------------------------------------------------------


def test_refusals_are_logged_once_per_episode_with_their_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    logger = logging.getLogger("tests.episodes")
    episodes = EpisodeLog(logger, "test port", quiet_s=10, remind_s=300, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, "tests.episodes"):
        for i in range(10_000):
            now[0] += 0.001
            episodes.note("evicted" if i % 4 else "over_capacity", "127.0.0.1")
        assert len(caplog.records) == 1
        assert "refusing connections (first: over_capacity from 127.0.0.1)" in caplog.text
        now[0] += 5
        episodes.tick()  # not quiet long enough yet
        assert len(caplog.records) == 1 and episodes.active
        now[0] += 5
        episodes.tick()
        assert not episodes.active
        assert len(caplog.records) == 2
        assert "stopped refusing connections: 10000 in 20 s (evicted 7500, over_capacity 2500)" in (
            caplog.records[1].getMessage()
        )
        # A long episode says it still goes on, every remind_s; a new one starts afresh.
        for _ in range(700):
            now[0] += 1
            episodes.note("not_allowed")
        assert len(caplog.records) == 5  # start, two reminders
        assert "still refusing connections: 300 in 300 s (not_allowed 300)" in caplog.text
        episodes.close()
        assert len(caplog.records) == 6 and "700 in" in caplog.records[-1].getMessage()
        assert episodes.episodes == 2


# --- the guard on real sockets ----------------------------------------------------------


class Recorder(asyncio.Protocol):
    """An inner protocol that remembers what happened to it, and answers b"ok\\n" to a
    complete header."""

    made: ClassVar[list[Recorder]] = []

    def __init__(self) -> None:
        self.lost: Exception | str | None = "open"
        self.data = b""
        self.transport: asyncio.Transport | None = None
        Recorder.made.append(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data
        if self.transport is not None and b"\n\n" in self.data:
            self.transport.write(b"ok\n")

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc


@pytest.fixture
async def guarded() -> AsyncIterator[Callable[..., Any]]:
    servers: list[tuple[asyncio.Server, ConnectionGuard]] = []
    Recorder.made = []

    async def start(host: str = "127.0.0.1", **limits: Any) -> tuple[ConnectionGuard, int]:
        limits.setdefault("max_connections", 100)
        guard = ConnectionGuard("test", **limits)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(guard.wrap(Recorder), host, 0)
        servers.append((server, guard))
        return guard, server.sockets[0].getsockname()[1]

    yield start
    for server, guard in servers:
        server.close()
        for made in Recorder.made:
            if made.transport is not None:
                made.transport.abort()
        await server.wait_closed()
        guard.close()


async def read_all(sock: socket.socket) -> bytes:
    """What the server sent until it closed (a reset counts as closed)."""
    loop = asyncio.get_running_loop()
    out = b""
    async with asyncio.timeout(30):
        while True:
            try:
                chunk = await loop.sock_recv(sock, 4096)
            except ConnectionResetError:
                return out
            if not chunk:
                return out
            out += chunk


def refused(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "crm_bridge_connections_refused_total", {"listener": "test", "reason": reason}
    )
    return value or 0.0


async def test_a_peer_outside_the_allow_list_is_closed_before_a_byte_is_read(
    guarded: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    guard, port = await guarded(allow=parse_allow(["10.0.0.0/8"], "agi.allow"))
    before = refused("not_allowed")
    with caplog.at_level(logging.INFO, "bridge.netguard"):
        sockets = await open_sockets(port, 200, send=b"agi_network: yes\n\n")
        try:
            for sock in sockets[:3]:
                assert await read_all(sock) == b""
            await wait_until(lambda: guard.seen == 200)
        finally:
            close_sockets(sockets)
        assert Recorder.made == []  # the real protocol never existed
        assert guard.refused == {"not_allowed": 200} and guard.open == 0
        assert refused("not_allowed") == before + 200
        assert len(caplog.records) == 1  # one line for the episode, not one per connection
        guard.close()
        assert len(caplog.records) == 2
        assert "200 in" in caplog.records[1].getMessage()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_ipv6_peers_are_matched_too(guarded: Callable[..., Any]) -> None:
    loop = asyncio.get_running_loop()
    for allow, answer in [(["::1"], b"ok\n"), (["127.0.0.0/8", "2001:db8::/32"], b"")]:
        guard, port = await guarded("::1", allow=parse_allow(allow, "agi.allow"))
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, ("::1", port))
            with contextlib.suppress(OSError):
                await loop.sock_sendall(sock, b"hello\n\n")
            if answer:
                assert await loop.sock_recv(sock, 10) == answer
            else:
                assert await read_all(sock) == b""
        await wait_until(lambda g=guard: g.seen == 1)
        assert guard.refused == ({} if answer else {"not_allowed": 1})


async def test_when_full_the_oldest_pending_connection_makes_room_and_then_new_ones_are_refused(
    guarded: Callable[..., Any],
) -> None:
    guard, port = await guarded(max_connections=2)
    loop = asyncio.get_running_loop()
    first = await open_sockets(port, 1)
    await wait_until(lambda: guard.seen == 1)
    second = await open_sockets(port, 1)
    await wait_until(lambda: guard.seen == 2)
    third = await open_sockets(port, 1)  # both slots pending: the oldest (first) is cut
    await wait_until(lambda: guard.seen == 3)
    try:
        assert await read_all(first[0]) == b""
        assert guard.refused == {"evicted": 1}
        cut = Recorder.made[0]
        assert isinstance(cut.lost, ConnectionCut) and cut.lost.reason == "evicted"
        # Past their header, connections are never evicted: a newcomer is refused instead.
        for sock in second + third:
            await loop.sock_sendall(sock, b"hello\n\n")
            assert await loop.sock_recv(sock, 10) == b"ok\n"
        assert guard.pending == 0 and guard.open == 2
        fourth = await open_sockets(port, 1, send=b"hello\n\n")
        assert await read_all(fourth[0]) == b""
        assert guard.refused == {"evicted": 1, "over_capacity": 1}
        assert len(Recorder.made) == 3  # the refused one never reached the real protocol
        close_sockets(fourth)
        close_sockets(second)
        await wait_until(lambda: guard.open == 1)
        fifth = await open_sockets(port, 1, send=b"hello\n\n")
        assert await loop.sock_recv(fifth[0], 10) == b"ok\n"  # a freed slot is usable again
        close_sockets(fifth)
    finally:
        close_sockets(first)
        close_sockets(third)


async def test_pending_slots_are_capped_apart_from_established_ones(
    guarded: Callable[..., Any],
) -> None:
    guard, port = await guarded(max_connections=10, max_pending=2)
    idle = await open_sockets(port, 5)
    try:
        await wait_until(lambda: guard.seen == 5)
        assert guard.pending == 2 and guard.refused == {"evicted": 3}
        real = await open_sockets(port, 1, send=b"hello\n\n")
        assert await asyncio.get_running_loop().sock_recv(real[0], 10) == b"ok\n"
        close_sockets(real)
    finally:
        close_sockets(idle)


async def test_a_silent_connection_is_cut_after_the_first_byte_deadline(
    guarded: Callable[..., Any],
) -> None:
    guard, port = await guarded(first_byte_timeout_s=0.05)
    silent = await open_sockets(port, 1)
    try:
        assert await read_all(silent[0]) == b""
    finally:
        close_sockets(silent)
    assert guard.refused == {"first_byte_timeout": 1}
    assert isinstance(Recorder.made[0].lost, ConnectionCut)


async def test_a_trickling_header_is_cut_at_the_header_deadline(
    guarded: Callable[..., Any],
) -> None:
    guard, port = await guarded(header_timeout_s=0.05)
    trickle = await open_sockets(port, 1, send=b"GET / HTTP/1.1\r\n")
    try:
        assert await read_all(trickle[0]) == b""
    finally:
        close_sockets(trickle)
    assert guard.refused == {"header_timeout": 1}
    assert Recorder.made[0].data == b"GET / HTTP/1.1\r\n"  # what came was passed on


async def test_with_both_deadlines_a_trickle_past_the_first_byte_is_cut_at_the_header_one(
    guarded: Callable[..., Any],
) -> None:
    # One timer serves both deadlines: bytes before the first-byte deadline move it on.
    guard, port = await guarded(first_byte_timeout_s=0.5, header_timeout_s=0.6)
    trickle = await open_sockets(port, 1, send=b"agi_network: yes\n")
    try:
        assert await read_all(trickle[0]) == b""
    finally:
        close_sockets(trickle)
    assert guard.refused == {"header_timeout": 1}


async def test_with_both_deadlines_a_silent_connection_is_cut_at_the_first_byte_one(
    guarded: Callable[..., Any],
) -> None:
    guard, port = await guarded(first_byte_timeout_s=0.05, header_timeout_s=30)
    silent = await open_sockets(port, 1)
    try:
        assert await read_all(silent[0]) == b""
    finally:
        close_sockets(silent)
    assert guard.refused == {"first_byte_timeout": 1}


async def test_a_header_deadline_before_the_first_byte_one_cuts_first(
    guarded: Callable[..., Any],
) -> None:
    guard, port = await guarded(first_byte_timeout_s=30, header_timeout_s=0.05)
    silent = await open_sockets(port, 1)
    try:
        assert await read_all(silent[0]) == b""
    finally:
        close_sockets(silent)
    assert guard.refused == {"header_timeout": 1}


async def test_a_websockets_server_takes_the_guard_through_create_connection() -> None:
    guard = ConnectionGuard("test", max_connections=1, header_timeout_s=30)
    handled = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal handled
        handled += 1
        async for message in ws:
            await ws.send(message)

    async with serve(
        handler, "127.0.0.1", 0, create_connection=guarded_connection(guard)
    ) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
            # The only slot is held past its handshake: the next socket is refused at once.
            with pytest.raises(Exception):  # noqa: B017 - reset or closed handshake
                async with connect(f"ws://127.0.0.1:{port}", open_timeout=10):
                    pass
            assert guard.refused == {"over_capacity": 1}
        await wait_until(lambda: guard.open == 0)
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            await ws.send("again")
            assert await ws.recv() == "again"
    guard.close()
    assert handled == 2


def test_the_open_file_limit_is_raised_as_far_as_allowed_and_never_lowered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert raise_open_files_limit(16) == soft  # enough already: unchanged
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (soft, hard)
    if hard != resource.RLIM_INFINITY:
        with caplog.at_level(logging.WARNING, "bridge.netguard"):
            assert raise_open_files_limit(hard + 1) == hard
        assert "below the" in caplog.text and "max_connections" in caplog.text


def test_the_bridge_asks_for_the_descriptors_its_caps_need() -> None:
    config = build_config({}, {}, runtime=False)
    assert open_files_needed(config) == 1000 + 256 + 1024 + 1024 + 10 + 256
