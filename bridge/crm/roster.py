"""Every agent in memory, kept current by LISTEN/NOTIFY: who a device belongs to, whose
token is valid, and which open sessions must close because their token no longer is.

Why in memory: pops are routed synchronously in PBX event order, so "whose device is 1001"
cannot wait on a query; and a session must end the moment its token is rotated or its agent
disabled, on every bridge sharing the database. Each change to `agents` sends NOTIFY
`crm_agents_changed` with the agent id (sql/050); the roster re-reads that row and tells its
subscribers (`on_change`). Rows carry a `version` that only grows, so a slow read can never
bring an older row back over a newer one. When notifications may have been missed (the
listener's connection was lost) the roster reloads everything, then tells subscribers about
every agent.

A session is valid while the roster's row for its agent is active and holds the token digest
the session authenticated with (`session_valid`). Authentication checks memory first and
falls back to the database for a token the roster does not know yet (a rotation whose
notification is still on its way), applying the newer row it reads.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from bridge.component import Health
from bridge.crm.agents import Agent, hash_token, valid_token_text
from bridge.crm.listener import PgListener
from bridge.db.errors import map_db_errors
from bridge.errors import CrmUnavailable

log = logging.getLogger(__name__)

__all__ = ["CHANNEL", "AgentRoster"]

CHANNEL = "crm_agents_changed"
# `pbx_device` (sql/100_agents_pbx.sql): the device as call events name it, the bare
# extension with one PBX, `<pbx>:<ext>` with several; the roster's agents carry it as `device`.
_COLUMNS = "id, name, role, pbx_device AS device, active, token_hash, version"

OnChange = Callable[[str], None]  # called with the id of an agent whose row changed or vanished


@dataclass(frozen=True, slots=True)
class _Entry:
    agent: Agent
    digest: str
    version: int


class AgentRoster:
    """Component `roster`. Subscribe to `listener` before it starts (constructor does)."""

    name = "roster"

    def __init__(self, pool: asyncpg.Pool[Any], listener: PgListener) -> None:
        self._pool = pool
        self._listener = listener
        self._by_id: dict[str, _Entry] = {}
        self._by_device: dict[str, str] = {}
        self._by_digest: dict[str, str] = {}
        self._subscribers: list[OnChange] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._loaded = False
        listener.subscribe(CHANNEL, self._on_notify, self._on_reset)

    # --- Component ---------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self._reload()
        except CrmUnavailable as exc:  # the listener's reset reloads once the database is back
            log.warning("agent roster not loaded yet: %s", exc)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def health(self) -> Health:
        fresh = self._loaded and self._listener.listening
        return Health("up" if fresh else "degraded", detail={"agents": len(self._by_id)})

    # --- lookups (no I/O) --------------------------------------------------------------

    def on_change(self, callback: OnChange) -> None:
        self._subscribers.append(callback)

    def get(self, agent_id: str) -> Agent | None:
        entry = self._by_id.get(agent_id)
        return None if entry is None else entry.agent

    def by_device(self, device: str) -> Agent | None:
        """The active agent whose extension is `device`, or None."""
        agent_id = self._by_device.get(device)
        entry = self._by_id.get(agent_id) if agent_id is not None else None
        if entry is None or not entry.agent.active:
            return None
        return entry.agent

    def agent_id_of(self, device: str) -> str | None:
        agent = self.by_device(device)
        return None if agent is None else agent.id

    def session_valid(self, agent_id: str, digest: str) -> bool:
        entry = self._by_id.get(agent_id)
        return (
            entry is not None and entry.agent.active and hmac.compare_digest(entry.digest, digest)
        )

    # --- authentication ----------------------------------------------------------------

    async def authenticate(self, token: str) -> tuple[Agent, str] | None:
        """(agent, token digest) for a valid token of an active agent, else None."""
        if not valid_token_text(token):
            return None
        digest = hash_token(token)
        agent_id = self._by_digest.get(digest)
        if agent_id is not None and self.session_valid(agent_id, digest):
            entry = self._by_id[agent_id]
            return entry.agent, digest
        row = await self._fetchrow(f"SELECT {_COLUMNS} FROM agents WHERE token_hash = $1", digest)
        if row is None:
            return None
        self._apply(row)
        if not self.session_valid(row["id"], digest):
            return None
        return self._by_id[row["id"]].agent, digest

    # --- keeping current ---------------------------------------------------------------

    def _on_notify(self, payload: str) -> None:
        if payload:
            self._spawn(self._refresh(payload))
        else:  # TRUNCATE, or a change we cannot name: read everything again
            self._spawn(self._reload())

    def _on_reset(self) -> None:
        self._spawn(self._reload())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("agent roster could not refresh: %s", task.exception())

    async def _refresh(self, agent_id: str) -> None:
        row = await self._fetchrow(f"SELECT {_COLUMNS} FROM agents WHERE id = $1", agent_id)
        if row is None:
            self._remove(agent_id)
        else:
            self._apply(row)

    async def _reload(self) -> None:
        with map_db_errors("cannot load agents"):
            rows = await self._pool.fetch(f"SELECT {_COLUMNS} FROM agents")
        seen = set()
        for row in rows:
            seen.add(row["id"])
            self._apply(row, force=True)
        for agent_id in [a for a in self._by_id if a not in seen]:
            self._remove(agent_id)
        self._loaded = True

    def _apply(self, row: Any, *, force: bool = False) -> None:
        agent_id = row["id"]
        old = self._by_id.get(agent_id)
        version = int(row["version"])
        if old is not None and (old.version > version or (old.version == version and not force)):
            return
        agent = Agent(agent_id, row["name"], row["role"], row["device"], row["active"])
        entry = _Entry(agent, row["token_hash"], version)
        if old == entry:
            return
        self._unindex(old)
        self._by_id[agent_id] = entry
        self._by_device[agent.device] = agent_id
        self._by_digest[entry.digest] = agent_id
        self._tell(agent_id)

    def _remove(self, agent_id: str) -> None:
        old = self._by_id.pop(agent_id, None)
        if old is not None:
            self._unindex(old)
            self._tell(agent_id)

    def _unindex(self, old: _Entry | None) -> None:
        if old is None:
            return
        if self._by_device.get(old.agent.device) == old.agent.id:
            del self._by_device[old.agent.device]
        if self._by_digest.get(old.digest) == old.agent.id:
            del self._by_digest[old.digest]

    def _tell(self, agent_id: str) -> None:
        for callback in self._subscribers:
            try:
                callback(agent_id)
            except Exception:
                log.exception("agent roster subscriber failed")

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        with map_db_errors("agent query failed"):
            return await self._pool.fetchrow(sql, *args)
