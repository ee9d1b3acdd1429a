"""Writing customers of the built-in CRM store: validation and the few SQL statements.

Used by the admin API and the CRM webhook. Every write function takes the connection of the
caller's transaction, so the caller decides what commits together (the change, its audit
row, the webhook's replay memory). Reads of a whole customer return a plain JSON-ready dict:

    {"id", "name", "phones": ["+E164", ...], "tags": [...], "attributes": {...},
     "owner": agent id or None, "created_at", "updated_at"}

The tables' NOTIFY triggers (sql/010) tell the caller-lookup cache about every change, so
the next call sees it without a restart.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import asyncpg

from bridge.crm.phones import to_e164
from bridge.errors import DuplicatePhone, ValidationError

if TYPE_CHECKING:
    from typing import TypeAlias

    from asyncpg.pool import PoolConnectionProxy

    # A connection, or the proxy a pool hands out: what every write function takes.
    Conn: TypeAlias = asyncpg.Connection[Any] | PoolConnectionProxy[Any]

MAX_ID = 128
MAX_NAME = 300
MAX_PHONES = 50
MAX_TAGS = 100
MAX_ATTRIBUTES = 200
MAX_ATTRIBUTE_KEY = 100
MAX_ATTRIBUTES_JSON = 32 * 1024
MAX_DEPTH = 5

TAG_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
AGENT_ID_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


# --- validation (pure) ------------------------------------------------------------------


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text)


def text_field(value: Any, field: str, *, max_len: int, allow_empty: bool = False) -> str:
    """A single-line text value: no control characters (CR, LF, NUL...), length bounded."""
    if not isinstance(value, str):
        raise ValidationError(field, "must be text")
    text = value.strip()
    if not text and not allow_empty:
        raise ValidationError(field, "must not be empty")
    if len(text) > max_len:
        raise ValidationError(field, f"longer than {max_len} characters")
    if _has_control(text):
        raise ValidationError(field, "must not contain control characters (CR, LF, NUL, ...)")
    return text


def customer_id(value: Any, field: str = "id") -> str:
    """An id is used as given: surrounding spaces are refused, not silently trimmed."""
    if isinstance(value, str) and value != value.strip():
        raise ValidationError(field, "must not start or end with spaces")
    return text_field(value, field, max_len=MAX_ID)


def customer_name(value: Any, field: str = "name") -> str:
    return text_field(value, field, max_len=MAX_NAME)


def tag(value: Any, field: str = "tag") -> str:
    if not isinstance(value, str) or not TAG_RE.fullmatch(value):
        raise ValidationError(field, "a tag is 1-64 letters, digits or _ . : -")
    return value


def tags(value: Any, field: str = "tags") -> list[str]:
    if not isinstance(value, list):
        raise ValidationError(field, "must be a list of tags")
    if len(value) > MAX_TAGS:
        raise ValidationError(field, f"more than {MAX_TAGS} tags")
    return sorted({tag(v, f"{field}[{i}]") for i, v in enumerate(value)})


def phone(value: Any, region: str, field: str = "phone") -> str:
    if not isinstance(value, str):
        raise ValidationError(field, "must be a phone number as text")
    e164 = to_e164(value, region)
    if e164 is None:
        raise ValidationError(field, f"not a valid phone number: {value[:40]!r}")
    return e164


def phones(value: Any, region: str, field: str = "phones") -> list[str]:
    if not isinstance(value, list):
        raise ValidationError(field, "must be a list of phone numbers")
    if len(value) > MAX_PHONES:
        raise ValidationError(field, f"more than {MAX_PHONES} phones")
    out: list[str] = []
    for i, raw in enumerate(value):
        e164 = phone(raw, region, f"{field}[{i}]")
        if e164 not in out:
            out.append(e164)
    return out


def agent_id(value: Any, field: str = "owner") -> str:
    if not isinstance(value, str) or not AGENT_ID_RE.fullmatch(value):
        raise ValidationError(field, "an agent id is 1-64 letters, digits or _ . @ -")
    return value


def attributes(value: Any, field: str = "attributes") -> dict[str, Any]:
    """A JSON object of plain values; no NUL anywhere (PostgreSQL jsonb refuses it)."""
    if not isinstance(value, dict):
        raise ValidationError(field, "must be a JSON object")
    if len(value) > MAX_ATTRIBUTES:
        raise ValidationError(field, f"more than {MAX_ATTRIBUTES} attributes")
    for key in value:
        if not key or len(key) > MAX_ATTRIBUTE_KEY or _has_control(key):
            raise ValidationError(
                f"{field}.{key[:40]}",
                f"attribute names are 1-{MAX_ATTRIBUTE_KEY} characters without control ones",
            )
    _check_json(value, field, 0)
    if len(json.dumps(value)) > MAX_ATTRIBUTES_JSON:
        raise ValidationError(field, f"larger than {MAX_ATTRIBUTES_JSON} bytes as JSON")
    return dict(value)


def _check_json(value: Any, field: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValidationError(field, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationError(field, "must not contain NUL characters")
    elif isinstance(value, dict):
        for k, v in value.items():
            if "\x00" in k:
                raise ValidationError(field, "must not contain NUL characters")
            _check_json(v, f"{field}.{k}", depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_json(v, f"{field}[{i}]", depth + 1)
    elif value is not None and not isinstance(value, (bool, int, float)):
        raise ValidationError(field, "must be plain JSON")


# --- reads ------------------------------------------------------------------------------

_CUSTOMER_SQL = """
SELECT c.id, c.name, c.attributes, c.created_at, c.updated_at,
       coalesce((SELECT array_agg(p.e164 ORDER BY p.created_at, p.e164)
                 FROM customer_phones p WHERE p.customer_id = c.id), '{}') AS phones,
       coalesce((SELECT array_agg(t.tag ORDER BY t.tag)
                 FROM customer_tags t WHERE t.customer_id = c.id), '{}') AS tags,
       (SELECT o.agent_id FROM customer_owners o WHERE o.customer_id = c.id) AS owner
FROM customers c
"""


def _as_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "phones": list(row["phones"]),
        "tags": list(row["tags"]),
        "attributes": row["attributes"],
        "owner": row["owner"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


async def get(conn: Conn | asyncpg.Pool[Any], cid: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(_CUSTOMER_SQL + " WHERE c.id = $1", cid)
    return None if row is None else _as_dict(row)


async def page(
    conn: Conn | asyncpg.Pool[Any], *, after: str = "", limit: int = 100
) -> list[dict[str, Any]]:
    """Customers in id order after `after` (keyset paging)."""
    rows = await conn.fetch(_CUSTOMER_SQL + " WHERE c.id > $1 ORDER BY c.id LIMIT $2", after, limit)
    return [_as_dict(row) for row in rows]


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search(
    conn: Conn | asyncpg.Pool[Any],
    text: str,
    e164: str | None,
    *,
    after: str = "",
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Customers matching `text` (`GET /api/customers?q=`), in id order after `after`: the
    name contains it, the id starts with it (both case-insensitive), an attribute equals it
    (e-mail, account number), or, when it is a phone number (`e164`), they have that phone."""
    like = _like(text)
    rows = await conn.fetch(
        _CUSTOMER_SQL + " WHERE c.id > $4 AND ("
        " c.name ILIKE '%' || $1 || '%' ESCAPE '\\'"
        " OR c.id ILIKE $1 || '%' ESCAPE '\\'"
        " OR EXISTS (SELECT 1 FROM customer_phones p WHERE p.customer_id = c.id"
        "            AND p.e164 = $2::text)"
        " OR EXISTS (SELECT 1 FROM jsonb_each_text(c.attributes) a"
        "            WHERE lower(a.value) = lower($3)))"
        " ORDER BY c.id LIMIT $5",
        like,
        e164,
        text,
        after,
        limit,
    )
    return [_as_dict(row) for row in rows]


async def lock(conn: Conn, cid: str) -> dict[str, Any] | None:
    """The customer, its row locked for the rest of the transaction (None if absent)."""
    if await conn.fetchval("SELECT 1 FROM customers WHERE id = $1 FOR UPDATE", cid) is None:
        return None
    return await get(conn, cid)


async def find_by_phone(conn: Conn | asyncpg.Pool[Any], e164: str) -> str | None:
    value: str | None = await conn.fetchval(
        "SELECT customer_id FROM customer_phones WHERE e164 = $1", e164
    )
    return value


def snapshot(customer: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What the audit log keeps of a customer (no timestamps: they change on every write)."""
    if customer is None:
        return None
    return {k: customer[k] for k in ("id", "name", "phones", "tags", "attributes", "owner")}


# --- writes (caller's transaction) ------------------------------------------------------


async def upsert_row(conn: Conn, cid: str, name: str, attrs: dict[str, Any] | None) -> None:
    """Create the customer row or update its name (and attributes when given)."""
    await conn.execute(
        "INSERT INTO customers (id, name, attributes) VALUES ($1, $2, coalesce($3, '{}'::jsonb))"
        " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,"
        " attributes = coalesce($3, customers.attributes), updated_at = now()",
        cid,
        name,
        attrs,
    )


async def touch(conn: Conn, cid: str) -> None:
    await conn.execute("UPDATE customers SET updated_at = now() WHERE id = $1", cid)


async def add_phone(conn: Conn, cid: str, e164: str, label: str = "") -> None:
    """Give `e164` to the customer; DuplicatePhone if another customer has it."""
    inserted = await conn.fetchval(
        "INSERT INTO customer_phones (e164, customer_id, label) VALUES ($1, $2, $3)"
        " ON CONFLICT (e164) DO NOTHING RETURNING 1",
        e164,
        cid,
        label,
    )
    if inserted:
        return
    owner = await find_by_phone(conn, e164)
    if owner is not None and owner != cid:
        raise DuplicatePhone(e164, owner)
    if owner is None:  # removed between our insert and our look: try once more
        await add_phone(conn, cid, e164, label)


async def remove_phone(conn: Conn, cid: str, e164: str) -> bool:
    status = await conn.execute(
        "DELETE FROM customer_phones WHERE e164 = $1 AND customer_id = $2", e164, cid
    )
    return status != "DELETE 0"


async def set_phones(conn: Conn, cid: str, wanted: Iterable[str]) -> None:
    wanted = list(wanted)
    await conn.execute(
        "DELETE FROM customer_phones WHERE customer_id = $1 AND NOT (e164 = ANY($2::text[]))",
        cid,
        wanted,
    )
    for e164 in wanted:
        await add_phone(conn, cid, e164)


async def add_tag(conn: Conn, cid: str, name: str) -> bool:
    status = await conn.execute(
        "INSERT INTO customer_tags (customer_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        cid,
        name,
    )
    return status != "INSERT 0 0"


async def remove_tag(conn: Conn, cid: str, name: str) -> bool:
    status = await conn.execute(
        "DELETE FROM customer_tags WHERE customer_id = $1 AND tag = $2", cid, name
    )
    return status != "DELETE 0"


async def set_tags(conn: Conn, cid: str, wanted: Iterable[str]) -> None:
    wanted = sorted(set(wanted))
    await conn.execute(
        "DELETE FROM customer_tags WHERE customer_id = $1 AND NOT (tag = ANY($2::text[]))",
        cid,
        wanted,
    )
    await conn.execute(
        "INSERT INTO customer_tags (customer_id, tag) SELECT $1, unnest($2::text[])"
        " ON CONFLICT DO NOTHING",
        cid,
        wanted,
    )


async def set_owner(conn: Conn, cid: str, owner: str | None) -> None:
    """Make `owner` (an existing agent) the customer's owner; None removes the owner."""
    if owner is None:
        await conn.execute("DELETE FROM customer_owners WHERE customer_id = $1", cid)
        return
    if await conn.fetchval("SELECT 1 FROM agents WHERE id = $1", owner) is None:
        raise ValidationError("owner", f"no agent {owner!r}")
    await conn.execute(
        "INSERT INTO customer_owners (customer_id, agent_id) VALUES ($1, $2)"
        " ON CONFLICT (customer_id) DO UPDATE SET agent_id = EXCLUDED.agent_id, since = now()"
        " WHERE customer_owners.agent_id <> EXCLUDED.agent_id",
        cid,
        owner,
    )


async def delete(conn: Conn, cid: str) -> bool:
    status = await conn.execute("DELETE FROM customers WHERE id = $1", cid)
    return status != "DELETE 0"
