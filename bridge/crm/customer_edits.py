"""Creating and correcting customers in the built-in store, as the desk asks through the
connector (`BuiltinConnector.create_customer`, `.update_customer`).

Each change and its audit row commit together. A creation serialises on the number (an
advisory lock), so of two agents creating the same caller at once one wins and the other
gets `DuplicatePhone`; a correction locks the customer row and asks `allowed(owner)` on
what it locked, so a refusal (`EditRefused`) leaves nothing behind. The directory's cache
learns of both through the tables' NOTIFY triggers: the next call from the number is known.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from bridge.crm import audit, customers
from bridge.db.errors import map_db_errors
from bridge.errors import BridgeError, DuplicatePhone, NotFound
from bridge.models import Customer

__all__ = ["EditRefused", "create", "edit_policy", "update"]


class EditRefused(BridgeError):
    """The actor may not change this customer (HTTP 403)."""


def edit_policy(role: str, agent_id: str, setting: str) -> Callable[[str | None], bool]:
    """Whether this agent may correct a customer with a given owner (`[permissions]
    agents_edit`: none | own | all); supervisors and admins always may."""
    if role in ("supervisor", "admin") or setting == "all":
        return lambda owner: True
    if setting == "own":
        return lambda owner: owner is None or owner == agent_id
    return lambda owner: False


def _customer(row: dict[str, Any]) -> Customer:
    return Customer(
        id=row["id"],
        name=row["name"],
        tags=tuple(row["tags"]),
        attributes=dict(row["attributes"] or {}),
        owner=row["owner"],
    )


async def create(
    pool: asyncpg.Pool[Any], name: str, e164: str, tags: Sequence[str], *, actor: str
) -> Customer:
    """A new customer with this (validated) name, number and tags."""
    cid = "c-" + secrets.token_hex(8)
    with map_db_errors("cannot create the customer"):
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('phone:' || $1))", e164)
            owner = await customers.find_by_phone(conn, e164)
            if owner is not None:
                raise DuplicatePhone(e164, owner)
            await customers.upsert_row(conn, cid, name, {})
            await customers.set_phones(conn, cid, [e164])
            await customers.set_tags(conn, cid, tags)
            after = await customers.get(conn, cid)
            assert after is not None
            await audit.record(
                conn,
                actor=actor,
                action="customer.create",
                target_type="customer",
                target_id=cid,
                before=None,
                after=customers.snapshot(after),
            )
    return _customer(after)


async def update(
    pool: asyncpg.Pool[Any],
    cid: str,
    *,
    name: str | None,
    tags: Sequence[str] | None,
    actor: str,
    allowed: Callable[[str | None], bool],
) -> Customer:
    """Correct the name and/or tags (validated) if `allowed(owner)`; `NotFound`, `EditRefused`."""
    with map_db_errors("cannot update the customer"):
        async with pool.acquire() as conn, conn.transaction():
            before = await customers.lock(conn, cid)
            if before is None:
                raise NotFound(f"no customer {cid[:128]!r}")
            if not allowed(before["owner"]):
                raise EditRefused("you may not edit this customer")
            if name is not None and name != before["name"]:
                await customers.upsert_row(conn, cid, name, None)
            if tags is not None:
                await customers.set_tags(conn, cid, tags)
            after = await customers.get(conn, cid)
            assert after is not None
            await audit.record(
                conn,
                actor=actor,
                action="customer.update",
                target_type="customer",
                target_id=cid,
                before=customers.snapshot(before),
                after=customers.snapshot(after),
            )
    return _customer(after)
