"""Component `cluster`: this instance's heartbeat and the lease on the once-only jobs.

Several `crm-bridge run` instances may share one database. Each serves FastAGI, pops and
HTTP and holds its own AMI link; the jobs that must run once (reconciliation, the alert
monitor, merge notices: `LeaderOnly` wraps them) run on the instance holding the lease.

The lease is a session-level advisory lock (`LEASE_LOCK`) held on one dedicated connection,
not a pooled one: PostgreSQL releases it the moment that session ends, so when the owner
dies (SIGKILL closes its socket, its backend exits) the lock is free at once, and a standby,
trying every `takeover_s / 3`, takes it within `takeover_s`. A half-open connection is cut by
the session's TCP keepalives, set to about `takeover_s` too. The owner notices it lost the
lease when its heartbeat on that connection fails (or asyncpg reports it closed): it stops
its jobs first, then reconnects as a standby.

Between the old owner's loss and its noticing it (at most one tick), two instances may
briefly both run a job: each job that must never overlap also takes its own advisory lock
per run (reconciliation `SYNC_LOCK`, merge notices `MERGE_LOCK`).

Each tick also refreshes this instance's row in `bridge_instances` (sql/110): peers are the
rows seen within `3 * takeover_s`; /healthz shows them (`describe()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal, Protocol

from bridge.cluster import metrics
from bridge.cluster.identity import Instance
from bridge.component import Health
from bridge.db.errors import DB_ERRORS
from bridge.errors import BridgeError
from bridge.tasks import cancel_and_wait

__all__ = ["LEASE_LOCK", "Lease", "LeaseFollower", "Role"]

log = logging.getLogger(__name__)

LEASE_LOCK = 0x6272_6C65_6164_6572  # "brleader": the session advisory lock of the lease
# A lost lease connection, or a connect refused as a BridgeError (TimeoutError is an OSError).
_LEASE_ERRORS = (*DB_ERRORS, BridgeError)

Role = Literal["leader", "standby"]
Connect = Callable[[], Awaitable[Any]]  # a new asyncpg connection, outside any pool


class LeaseFollower(Protocol):
    async def on_lease(self, held: bool) -> None:
        """Start (held) or stop (not held) what only the lease holder runs; never raises."""


_BEAT = """
INSERT INTO bridge_instances AS b (id, host, pid, role) VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO UPDATE SET seen_at = now(), role = EXCLUDED.role, host = EXCLUDED.host,
    pid = EXCLUDED.pid
"""

_PEERS = """
SELECT id, role, seen_at FROM bridge_instances
WHERE id <> $1 AND seen_at > now() - make_interval(secs => $2)
ORDER BY id
"""

_PRUNE = "DELETE FROM bridge_instances WHERE seen_at < now() - interval '1 day'"


class Lease:
    name = "cluster"

    def __init__(self, connect: Connect, instance: Instance, *, takeover_s: float = 5.0) -> None:
        self._connect = connect
        self.instance = instance
        self._takeover_s = takeover_s
        self._tick_s = takeover_s / 3
        self._conn: Any = None
        self._followers: list[LeaseFollower] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._changed = asyncio.Condition()
        self._beats = 0
        self._held = False
        self.peers: list[dict[str, Any]] = []
        self.last_error = ""

    # --- who runs what ---------------------------------------------------------------------

    @property
    def held(self) -> bool:
        return self._held

    @property
    def role(self) -> Role:
        return "leader" if self._held else "standby"

    def follow(self, follower: LeaseFollower) -> None:
        """`follower.on_lease(held)` on every change from now on (call `on_lease` yourself for
        the current state)."""
        self._followers.append(follower)

    def unfollow(self, follower: LeaseFollower) -> None:
        with contextlib.suppress(ValueError):
            self._followers.remove(follower)

    def describe(self) -> dict[str, Any]:
        """For /healthz: this instance's id and role, and the peers seen lately (id, role,
        last beat: /healthz answers anyone, so host names and pids stay in the table)."""
        return {
            "id": self.instance.id,
            "role": self.role,
            "peers": [
                {k: v.isoformat() if isinstance(v, datetime) else v for k, v in peer.items()}
                for peer in self.peers
            ],
        }

    # --- Component -------------------------------------------------------------------------

    async def start(self) -> None:
        """Returns after the first attempt: a lone instance holds the lease from the start."""
        if self._task is not None:
            return
        log.info("cluster: this is instance %s", self.instance.id)
        self._task = asyncio.create_task(self._run(), name="cluster-lease")
        async with self._changed:
            await self._changed.wait_for(lambda: self._beats > 0 or bool(self.last_error))

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        await self._set_held(False)
        conn, self._conn = self._conn, None
        if conn is not None:  # leave the peers' lists now; closing releases the lock
            with contextlib.suppress(*_LEASE_ERRORS):
                await conn.execute(
                    "DELETE FROM bridge_instances WHERE id = $1", self.instance.id, timeout=2
                )
            await _close(conn)

    def health(self) -> Health:
        detail: dict[str, Any] = {
            "id": self.instance.id,
            "role": self.role,
            "peers": len(self.peers),
        }
        if self._conn is None:
            detail["error"] = self.last_error
            return Health("down", required=False, detail=detail)
        return Health("up", required=False, detail=detail)

    async def wait_beats(self, count: int) -> None:
        """Until `count` heartbeats have been written in all (tests)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._beats >= count)

    # --- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self._beat()
            except _LEASE_ERRORS as exc:
                await self._lost(exc)
            async with self._changed:
                self._changed.notify_all()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._tick_s)

    async def _beat(self) -> None:
        if self._conn is None:
            self._conn = await self._open()
        conn, timeout = self._conn, self._tick_s
        if not self._held and await conn.fetchval(
            "SELECT pg_try_advisory_lock($1)", LEASE_LOCK, timeout=timeout
        ):
            await self._set_held(True)
        me = self.instance
        await conn.execute(_BEAT, me.id, me.host, me.pid, self.role, timeout=timeout)
        rows = await conn.fetch(_PEERS, me.id, 3 * self._takeover_s, timeout=timeout)
        if self._held and self._beats % 1000 == 0:
            await conn.execute(_PRUNE, timeout=timeout)
        self.peers = [dict(row) for row in rows]
        metrics.PEERS.set(len(self.peers))
        self.last_error = ""
        self._beats += 1

    async def _open(self) -> Any:
        conn = await self._connect()
        conn.add_termination_listener(lambda _conn: self._wake.set())
        # A dead owner's half-open session must not keep the lock past takeover_s: the
        # server probes an idle connection after ~takeover_s / 3 and drops it after 3 misses.
        probe = max(1, int(self._tick_s))
        await conn.execute(
            f"SET tcp_keepalives_idle = {probe}; SET tcp_keepalives_interval = {probe};"
            " SET tcp_keepalives_count = 3",
            timeout=self._tick_s,
        )
        await conn.execute(
            "SELECT set_config('application_name', $1, false)",
            f"crm-bridge lease {self.instance.id}"[:63],
            timeout=self._tick_s,
        )
        return conn

    async def _lost(self, exc: BaseException) -> None:
        first, self.last_error = not self.last_error, f"{type(exc).__name__}: {exc}"[:300]
        if self._held:
            log.warning("cluster: lost the lease (%s); stopping the jobs", self.last_error)
        elif first:  # once per outage, not every tick
            log.warning("cluster: database unreachable for the lease: %s", self.last_error)
        await self._set_held(False)
        conn, self._conn = self._conn, None
        if conn is not None:
            await _close(conn)

    async def _set_held(self, held: bool) -> None:
        if held == self._held:
            return
        self._held = held
        metrics.LEADER.set(1 if held else 0)
        if held:
            metrics.TAKEOVERS.inc()
            log.info("cluster: %s holds the lease: running the once-only jobs", self.instance.id)
        else:
            log.info("cluster: %s is standby", self.instance.id)
        for follower in list(self._followers):
            await follower.on_lease(held)


async def _close(conn: Any) -> None:
    """Close, or cut when the server does not answer (the lock goes with the session)."""
    try:
        await asyncio.wait_for(conn.close(), 2)
    except _LEASE_ERRORS:
        conn.terminate()
