"""Agents: who may receive pops and use the admin API, found by token or by device.

Tokens are 32 random bytes (`secrets.token_urlsafe(32)`, ~256 bits). Only their SHA-256
is stored: with that much entropy a slow password hash adds nothing (nobody can brute-force
the preimage), and a fast hash lets us find the agent with one indexed equality lookup
instead of comparing against every row. The comparison that matters happens inside the
B-tree on the hash, which leaks nothing useful about the token itself; we still re-check
with `hmac.compare_digest` so the Python side is constant-time too.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import asyncpg

from bridge.config import PBX_NAME
from bridge.db.errors import map_db_errors
from bridge.errors import ValidationError

if TYPE_CHECKING:
    from bridge.crm.customers import Conn

    Db: TypeAlias = Conn | asyncpg.Pool[Any]

Role = Literal["agent", "supervisor", "admin"]
ROLES: tuple[str, ...] = ("agent", "supervisor", "admin")

_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_DEVICE = re.compile(r"[A-Za-z0-9_.+-]{1,64}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,200}")


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    name: str
    role: Role
    device: str
    active: bool = True
    # The `[[pbx]]` entry the device is on ('' with one PBX). The roster's agents carry the
    # bridge-wide device (`east:1001`) as `device` and '' here: see `bridge_device`.
    pbx: str = ""


def bridge_device(agent: Agent) -> str:
    """The device as call events, pops and the wallboard name it: `<pbx>:<ext>` for an
    agent on one of several PBXs, else the bare extension (sql/100_agents_pbx.sql)."""
    return f"{agent.pbx}:{agent.device}" if agent.pbx else agent.device


def valid_token_text(token: object) -> bool:
    """A token's shape: what we issue (`token_urlsafe(32)`), with room; anything else is wrong."""
    return isinstance(token, str) and _TOKEN.fullmatch(token) is not None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _agent(row: Any) -> Agent:
    return Agent(row["id"], row["name"], row["role"], row["device"], row["active"], row["pbx"])


def validate_agent(id: str, name: str, role: str, device: str) -> None:
    if not isinstance(id, str) or not _ID.fullmatch(id):
        raise ValidationError("id", "1-64 letters, digits, '_', '.', '@' or '-'")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ValidationError("name", "required, at most 200 characters")
    if any(ch in name for ch in "\r\n\x00"):
        raise ValidationError("name", "must not contain CR, LF or NUL")
    if role not in ROLES:
        raise ValidationError("role", "one of agent, supervisor, admin")
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise ValidationError("device", "1-64 letters, digits, '_', '.', '+' or '-'")


async def create_agent(
    pool: asyncpg.Pool[Any],
    id: str,
    name: str,
    role: str = "agent",
    device: str | None = None,
    pbx: str = "",
) -> str:
    """Create an agent; return its fresh access token (shown once, stored as a hash).

    `pbx`: the `[[pbx]]` entry the device belongs to ('' with a single PBX)."""
    device = id if device is None else device
    validate_agent(id, name, role, device)
    if pbx and not PBX_NAME.fullmatch(pbx):
        raise ValidationError("pbx", "a [[pbx]] name: 1-16 of a-z, 0-9 and inner '-'")
    token = secrets.token_urlsafe(32)
    with map_db_errors("cannot create agent"):
        try:
            await pool.execute(
                "INSERT INTO agents (id, name, role, device, token_hash, pbx)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                id,
                name.strip(),
                role,
                device,
                hash_token(token),
                pbx,
            )
        except asyncpg.UniqueViolationError as exc:
            if "device" in (exc.constraint_name or ""):
                taken = f"{device} already belongs to another agent"
                raise ValidationError("device", taken) from exc
            raise ValidationError("id", f"agent {id} already exists") from exc
        except asyncpg.PostgresError as exc:
            raise ValidationError("agent", str(exc)) from exc
    return token


async def rotate_token(pool: asyncpg.Pool[Any], id: str) -> str | None:
    """Give an agent a new token (the old one stops working); None if no such agent."""
    token = secrets.token_urlsafe(32)
    status = await _execute(
        pool,
        "UPDATE agents SET token_hash = $2, updated_at = now() WHERE id = $1",
        id,
        hash_token(token),
    )
    return token if status.endswith(" 1") else None


async def set_active(pool: asyncpg.Pool[Any], id: str, active: bool) -> bool:
    status = await _execute(
        pool, "UPDATE agents SET active = $2, updated_at = now() WHERE id = $1", id, active
    )
    return status.endswith(" 1")


async def authenticate(pool: asyncpg.Pool[Any], token: str) -> Agent | None:
    """The active agent holding this token, or None (also for malformed tokens)."""
    if not valid_token_text(token):
        return None
    digest = hash_token(token)
    row = await _fetchrow(
        pool,
        "SELECT id, name, role, device, active, pbx, token_hash FROM agents"
        " WHERE token_hash = $1 AND active",
        digest,
    )
    if row is None or not hmac.compare_digest(row["token_hash"], digest):
        return None
    return _agent(row)


async def get_agent(pool: asyncpg.Pool[Any], id: str) -> Agent | None:
    if not isinstance(id, str) or not _ID.fullmatch(id):
        return None
    row = await _fetchrow(
        pool, "SELECT id, name, role, device, active, pbx FROM agents WHERE id = $1", id
    )
    return None if row is None else _agent(row)


async def agent_by_device(pool: asyncpg.Pool[Any], ext: str) -> Agent | None:
    """The agent whose device is `ext` (as `bridge_device` names it), active or not."""
    if not isinstance(ext, str) or not _DEVICE.fullmatch(ext):
        return None
    row = await _fetchrow(
        pool, "SELECT id, name, role, device, active, pbx FROM agents WHERE pbx_device = $1", ext
    )
    return None if row is None else _agent(row)


async def list_agents(pool: asyncpg.Pool[Any]) -> list[Agent]:
    with map_db_errors("cannot list agents"):
        rows = await pool.fetch(
            "SELECT id, name, role, device, active, pbx FROM agents ORDER BY id"
        )
    return [_agent(r) for r in rows]


async def owner_of(pool: asyncpg.Pool[Any], customer_id: str) -> Agent | None:
    """The agent owning this customer, or None."""
    if not isinstance(customer_id, str) or "\x00" in customer_id or len(customer_id) > 128:
        return None
    row = await _fetchrow(
        pool,
        "SELECT a.id, a.name, a.role, a.device, a.active, a.pbx FROM customer_owners o"
        " JOIN agents a ON a.id = o.agent_id WHERE o.customer_id = $1",
        customer_id,
    )
    return None if row is None else _agent(row)


async def _fetchrow(pool: asyncpg.Pool[Any], sql: str, *args: Any) -> Any:
    with map_db_errors("agent query failed"):
        return await pool.fetchrow(sql, *args)


async def _execute(pool: asyncpg.Pool[Any], sql: str, *args: Any) -> str:
    with map_db_errors("agent update failed"):
        return str(await pool.execute(sql, *args))


# --- in the caller's transaction (the admin API) --------------------------------------------
# These take a connection (or the pool) and let database errors through: the caller maps them
# at its boundary, and the change and its audit row commit together.

AGENT_COLUMNS = "id, name, role, device, active, pbx"


async def agent_rows(conn: Db) -> list[Any]:
    """Every agent (never tokens or hashes), by id."""
    return list(await conn.fetch(f"SELECT {AGENT_COLUMNS} FROM agents ORDER BY id"))


async def agent_row(conn: Db, id: str, *, for_update: bool = False) -> Any:
    """The agent's row, or None; `for_update` locks it until the transaction ends."""
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1{lock}", id)


async def device_owner(conn: Db, pbx: str, device: str, *, other_than: str) -> str | None:
    """The id of the agent other than `other_than` whose device is `device` on the PBX
    `pbx` ('' with a single PBX), or None: `1001` on east and on west are two devices."""
    owner = await conn.fetchval(
        "SELECT id FROM agents WHERE pbx = $1 AND device = $2 AND id <> $3",
        pbx,
        device,
        other_than,
    )
    return None if owner is None else str(owner)


async def insert_agent(
    conn: Db, id: str, name: str, role: str, device: str, token_hash: str, pbx: str = ""
) -> None:
    await conn.execute(
        "INSERT INTO agents (id, name, role, device, token_hash, pbx)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        id,
        name,
        role,
        device,
        token_hash,
        pbx,
    )


async def update_agent(
    conn: Db, id: str, *, name: str, role: str, device: str, active: bool, pbx: str
) -> None:
    await conn.execute(
        "UPDATE agents SET name = $2, role = $3, device = $4, active = $5, pbx = $6,"
        " updated_at = now() WHERE id = $1",
        id,
        name,
        role,
        device,
        active,
        pbx,
    )


async def deactivate_agent(conn: Db, id: str) -> None:
    await conn.execute("UPDATE agents SET active = false, updated_at = now() WHERE id = $1", id)


async def set_token_hash(conn: Db, id: str, token_hash: str) -> None:
    await conn.execute(
        "UPDATE agents SET token_hash = $2, updated_at = now() WHERE id = $1", id, token_hash
    )
