"""Agents on no configured PBX: with `[[pbx]]` entries an agent's device is `<pbx>:<ext>`
(sql/100_agents_pbx.sql), so an active agent whose `pbx` is '' (made before the entries
existed) or names no entry matches no device: never popped, never on the wallboard, its
calls attributed to nobody. `crm-bridge run` logs them once at start, `crm-bridge doctor`
reports them; `PATCH /api/agents/{id}` with `"pbx"` (or `crm-bridge agents add --pbx`) fixes it.
"""

from __future__ import annotations

import logging
from typing import Any

from bridge.config import Config
from bridge.db.errors import DB_ERRORS

__all__ = ["agents_off_pbx", "log_agents_off_pbx", "off_pbx_text"]

log = logging.getLogger(__name__)

_OFF = "SELECT id FROM agents WHERE active AND NOT (pbx = ANY($1::text[])) ORDER BY id"
_SHOWN = 20  # ids named in one line; the rest are counted


async def agents_off_pbx(conn: Any, config: Config) -> list[str]:
    """Ids of the active agents on no `[[pbx]]` entry (none with a single PBX)."""
    if not config.pbx_sites:
        return []
    rows = await conn.fetch(_OFF, [site.name for site in config.pbx_sites])
    return [str(row["id"]) for row in rows]


def off_pbx_text(ids: list[str]) -> str:
    """One line naming `ids` (agent ids: letters, digits and `_.@-` only)."""
    named = ", ".join(ids[:_SHOWN])
    more = f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else ""
    return (
        f"{len(ids)} active agent(s) on no configured [[pbx]] entry match no device"
        f" (never popped, not on the wallboard): {named}{more};"
        ' set each one\'s PBX with PATCH /api/agents/{id} {"pbx": "<name>"}'
    )


async def log_agents_off_pbx(pool: Any, config: Config) -> None:
    """Log one warning naming the agents on no configured PBX, if any."""
    try:
        ids = await agents_off_pbx(pool, config)
    except DB_ERRORS as exc:
        log.warning("cannot check the agents' PBXs: %s", exc)
        return
    if ids:
        log.warning("%s", off_pbx_text(ids))
