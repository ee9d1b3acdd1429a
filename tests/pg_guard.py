"""How many PostgreSQL connections this test run holds at once, watched while it runs.

The server is shared (by CI, by several developers' runs), so the suite may hold at most
`LIMIT` connections at any moment; tests/conftest.py fails the test during which a sample
went over it, and the session with it, and prints the peak at the end.

A thread counts, from the server's `pg_stat_activity`:

- every `INTERVAL_S`, and at once when a test's body returns (its fixtures still open), the
  connections to this run's own test database, whoever opened them (the suite, a
  `crm-bridge` subprocess, a bridge it started);
- every `RUN_SCAN_S`, the connections on any database (the admin one, those CLI tests
  create) whose client port is a TCP socket of this pytest process or of a process it
  started. Matching ports to processes reads /proc/net/tcp, which costs tens of
  milliseconds on a busy machine, hence the slower pace.

The watcher's own connection is left out of both. Sampling can miss a connection that lives
shorter than a period; pools and listeners, which make the peak, live for a whole test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

LIMIT = 20
INTERVAL_S = 0.05
RUN_SCAN_S = 2.0
# Lowers the limit for one run (the guard's own test does); it can never raise it.
LIMIT_ENV = "CRM_BRIDGE_TEST_PG_LIMIT"


def limit() -> int:
    """`LIMIT`, or less when `$CRM_BRIDGE_TEST_PG_LIMIT` says so."""
    try:
        return min(LIMIT, int(os.environ.get(LIMIT_ENV, LIMIT)))
    except ValueError:
        return LIMIT


_PEERS = """
SELECT datname, client_port FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
"""


def _descendants(pid: int) -> set[int]:
    """`pid` and every process it started, still running."""
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        if current in found:
            continue
        found.add(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo.extend(int(c) for c in (task / "children").read_text().split())
    return found


def _socket_inodes(pids: set[int]) -> set[int]:
    inodes: set[int] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(int(target[8:-1]))
    return inodes


def client_ports(server_port: int, pid: int | None = None) -> set[int]:
    """Local ports of the established TCP connections to `server_port` held by process
    `pid` (default: this one) and its descendants."""
    inodes = _socket_inodes(_descendants(pid or os.getpid()))
    # "sl: local_addr:port remote_addr:port state ... inode", state 01 = established
    row = re.compile(
        rb"^ *\d+: [0-9A-F]+:([0-9A-F]{4}) [0-9A-F]+:%04X 01 (?:\S+ +){5}(\d+) " % server_port,
        re.MULTILINE,
    )
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for local, inode in row.findall(Path(table).read_bytes()):
                if int(inode) in inodes:
                    ports.add(int(local, 16))
    return ports


@dataclass
class Peak:
    held: int = 0  # the larger of the two counts, at its highest
    database: int = 0  # on the test database, at its highest
    run: int = 0  # this run's on the whole server, at its highest
    during: str = ""  # the test running when `held` was reached


@dataclass
class ConnectionWatch:
    admin_url: str
    database: str | None = None  # the run's test database, once created
    session: Peak = field(default_factory=Peak)
    test: Peak = field(default_factory=Peak)
    current_test: str = ""
    error: str | None = None
    _wake: threading.Event = field(default_factory=threading.Event)
    _sampled: threading.Condition = field(default_factory=threading.Condition)
    _started: int = 0  # samples begun
    _done: int = 0  # the number of the last sample finished
    _stopping: bool = False
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="pg-guard", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def begin_test(self, nodeid: str) -> None:
        self.current_test = nodeid
        self.test = Peak(during=nodeid)

    def sample_now(self, timeout_s: float = 2.0) -> None:
        """Take a sample now and wait for it (a checkpoint while a test's fixtures are open)."""
        if self._thread is None or not self._thread.is_alive():
            return
        with self._sampled:
            target = self._started + 1  # the first sample begun after this call
            self._wake.set()
            self._sampled.wait_for(lambda: self._done >= target, timeout_s)

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        server_port = urlsplit(self.admin_url).port or 5432
        try:
            conn = await asyncpg.connect(self.admin_url)
        except (OSError, asyncpg.PostgresError) as exc:
            self.error = f"cannot watch connections: {exc}"
            with self._sampled:
                self._done = 2**62  # no waiter waits for a sample that never comes
                self._sampled.notify_all()
            return
        try:
            own_port = conn._transport.get_extra_info("sockname")[1]  # type: ignore[attr-defined]
            scanned = 0.0
            while not self._stopping:
                with self._sampled:
                    self._started += 1
                    number = self._started
                rows = await conn.fetch(_PEERS)
                database = sum(1 for r in rows if self.database and r["datname"] == self.database)
                run = 0  # counted only on the rounds that match ports to processes
                if time.monotonic() - scanned >= RUN_SCAN_S:
                    ports = client_ports(server_port) - {own_port}
                    run = sum(1 for r in rows if r["client_port"] in ports)
                    scanned = time.monotonic()
                self._record(database, run, number)
                self._wake.wait(INTERVAL_S)
                self._wake.clear()
        except Exception as exc:  # a thread's exception would be lost: report it instead
            self.error = f"stopped watching connections: {type(exc).__name__}: {exc}"
        finally:
            await conn.close()
            with self._sampled:
                self._done = 2**62  # release any waiter
                self._sampled.notify_all()

    def _record(self, database: int, run: int, number: int) -> None:
        held = max(database, run)
        for peak in (self.session, self.test):
            peak.database = max(peak.database, database)
            peak.run = max(peak.run, run)
            if held > peak.held:
                peak.held, peak.during = held, self.current_test
        with self._sampled:
            self._done = number
            self._sampled.notify_all()
