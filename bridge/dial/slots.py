"""`[dial] per_minute`, counted in PostgreSQL so that every bridge instance behind a load
balancer shares each agent's minute (issue 18): an agent cannot get `per_minute` dials on
each instance.

A sliding minute per agent: under the agent's transaction-level advisory lock, the slots
older than the window are dropped, the rest counted, and a new one taken if there is room. A
refused attempt takes no slot. Times come from the caller's clock (wall-clock seconds by
default; the instances' clocks are assumed NTP-synchronised, as for everything else).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["take_slot"]

_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('dial-slots:' || $1, 0))"
_PRUNE = "DELETE FROM dial_slots WHERE agent_id = $1 AND at <= $2"
_OLDEST = "SELECT count(*) AS n, min(at) AS oldest FROM dial_slots WHERE agent_id = $1"
_TAKE = "INSERT INTO dial_slots (agent_id, at) VALUES ($1, $2)"


async def take_slot(
    pool: Any, agent_id: str, *, now: float, per_minute: int, window_s: float = 60.0
) -> int | None:
    """Take one of the agent's slots: None when taken, else the seconds until one frees."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_LOCK, agent_id)
        await conn.execute(_PRUNE, agent_id, now - window_s)
        row = await conn.fetchrow(_OLDEST, agent_id)
        if row["n"] >= per_minute:
            return max(1, math.ceil(row["oldest"] + window_s - now))
        await conn.execute(_TAKE, agent_id, now)
        return None
