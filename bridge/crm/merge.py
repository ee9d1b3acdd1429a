"""Merging duplicate customers into one (`crm-bridge customers merge KEEP OTHER...`).

One transaction does all of it, or nothing:
- the survivor keeps its id and name; every phone of the others moves to it (the phone
  stays the primary key: nothing is copied, so "one customer per phone" holds throughout);
- tags: the union (policy `tags="survivor"`: the survivor's only);
- attributes and owner: keys only one record has are kept; two records with different
  values are a conflict, refused with each one named (MergeConflict) unless the policy says
  who wins (`on_conflict="survivor"`: the survivor's value, else the first other's in the
  order given; `owner`: this agent, or no owner);
- every other table with a `customer_id` column follows (orders, contracts, marketing
  events, service history, call records, route decisions, and any table a later migration
  adds), except the audit trail of who saw which customer (`card_views`), which records
  what was true then. Call records changing customer are queued again for the CRM by their
  trigger (sql/030);
- the others are deleted; the audit log gets `customer.merge` on the survivor and
  `customer.merged_into` on each other id, with before and after; `customer_merges` keeps
  the merge for `crm-bridge customers merges` and for the CRM connector
  (`pending_crm_merges` / `mark_crm_notified`; NOTIFY crm_customer_merged).

`merged_state` is the pure part (tested by tables); `merge` is the transaction.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeAlias

import asyncpg

from bridge.crm import audit, customers
from bridge.db.errors import map_db_errors
from bridge.errors import MergeConflict, NotFound, UsageError

UNSET: Any = object()
# Rows of these tables are not "the customer's" to move: handled apart, or history.
_NOT_MOVED = frozenset(
    {"customers", "customer_phones", "customer_tags", "customer_owners", "card_views"}
)
# The pool, or one connection of it a caller already holds (the notifier's locked round).
Db: TypeAlias = (
    "asyncpg.Pool[Any] | asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]"
)


@dataclass(frozen=True, slots=True)
class MergePolicy:
    on_conflict: Literal["refuse", "survivor"] = "refuse"
    tags: Literal["union", "survivor"] = "union"
    owner: Any = UNSET  # an agent id, None (no owner), or unset: from the records

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"on_conflict": self.on_conflict, "tags": self.tags}
        if self.owner is not UNSET:
            out["owner"] = self.owner
        return out


@dataclass
class MergeResult:
    merge_id: int | None  # None for a dry run
    survivor: dict[str, Any]
    merged_ids: list[str]
    moved: dict[str, int] = field(default_factory=dict)


def merged_state(
    survivor: Mapping[str, Any], others: Sequence[Mapping[str, Any]], policy: MergePolicy
) -> dict[str, Any]:
    """The survivor as it will be (snapshots as `customers.snapshot` gives them); raises
    MergeConflict naming every disagreement the policy does not settle (pure)."""
    everyone = [survivor, *others]
    conflicts: list[str] = []
    phones: list[str] = []
    for record in everyone:
        phones += [p for p in record["phones"] if p not in phones]
    tag_source = [survivor] if policy.tags == "survivor" else everyone
    tags = sorted({t for record in tag_source for t in record["tags"]})
    attributes: dict[str, Any] = {}
    for key in sorted({k for record in everyone for k in record["attributes"]}):
        values = [(r["id"], r["attributes"][key]) for r in everyone if key in r["attributes"]]
        distinct = {json.dumps(v, sort_keys=True) for _, v in values}
        if len(distinct) > 1 and policy.on_conflict == "refuse":
            shown = ", ".join(f"{cid}={json.dumps(v)[:40]}" for cid, v in values)
            conflicts.append(f"attribute {key!r} differs ({shown})")
        attributes[key] = values[0][1]  # the survivor's if it has one, else the first other's
    if policy.owner is not UNSET:
        owner = policy.owner
    else:
        owners = [(r["id"], r["owner"]) for r in everyone if r["owner"]]
        if len({o for _, o in owners}) > 1 and policy.on_conflict == "refuse":
            shown = ", ".join(f"{cid}={o}" for cid, o in owners)
            conflicts.append(f"owner differs ({shown})")
        owner = owners[0][1] if owners else None
    if conflicts:
        raise MergeConflict(conflicts)
    return {
        "id": survivor["id"],
        "name": survivor["name"],
        "phones": phones,
        "tags": tags,
        "attributes": attributes,
        "owner": owner,
    }


async def _customer_tables(conn: customers.Conn) -> list[str]:
    rows = await conn.fetch(
        "SELECT c.table_name FROM information_schema.columns c"
        " JOIN information_schema.tables t"
        "   ON t.table_schema = c.table_schema AND t.table_name = c.table_name"
        " WHERE c.table_schema = 'public' AND c.column_name = 'customer_id'"
        "   AND t.table_type = 'BASE TABLE' ORDER BY c.table_name"
    )
    return [r["table_name"] for r in rows if r["table_name"] not in _NOT_MOVED]


async def merge(
    pool: asyncpg.Pool[Any],
    survivor_id: str,
    other_ids: Sequence[str],
    policy: MergePolicy | None = None,
    *,
    actor: str = audit.CLI_ACTOR,
    reason: str = "",
    dry_run: bool = False,
) -> MergeResult:
    """Merge `other_ids` into `survivor_id` (see the module docstring). NotFound for an id
    that does not exist, UsageError for a malformed request, MergeConflict for a conflict:
    in every refusal nothing changes."""
    policy = policy or MergePolicy()
    for cid in (survivor_id, *other_ids):
        customers.customer_id(cid)  # ValidationError for NUL, CR/LF, oversized ids
    others = list(dict.fromkeys(other_ids))
    if not others:
        raise UsageError("name at least one customer to merge into the survivor")
    if survivor_id in others:
        raise UsageError(f"{survivor_id} cannot be merged into itself")
    with map_db_errors("merge stopped, nothing changed"):
        try:
            async with pool.acquire() as conn:
                tx = conn.transaction()
                await tx.start()
                try:
                    result = await _merge(conn, survivor_id, others, policy, actor, reason)
                except BaseException:
                    await tx.rollback()
                    raise
                if dry_run:
                    await tx.rollback()
                    result.merge_id = None
                else:
                    await tx.commit()
                return result
        except asyncpg.UniqueViolationError as exc:
            raise MergeConflict([f"the database refused a moved row: {exc}"]) from exc
        except asyncpg.ForeignKeyViolationError as exc:
            raise MergeConflict([f"the database refused: {exc}"]) from exc


async def _merge(
    conn: customers.Conn,
    survivor_id: str,
    others: list[str],
    policy: MergePolicy,
    actor: str,
    reason: str,
) -> MergeResult:
    ids = [survivor_id, *others]
    locked = {
        r["id"]
        for r in await conn.fetch(
            "SELECT id FROM customers WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE", ids
        )
    }
    missing = [cid for cid in ids if cid not in locked]
    if missing:
        raise NotFound(f"no customer {', '.join(repr(m[:128]) for m in missing)}; nothing changed")
    snapshots: dict[str, dict[str, Any]] = {}
    for cid in ids:
        snap = customers.snapshot(await customers.get(conn, cid))
        assert snap is not None  # locked above
        snapshots[cid] = snap
    after = merged_state(snapshots[survivor_id], [snapshots[o] for o in others], policy)
    moved: dict[str, int] = {}
    status = await conn.execute(
        "UPDATE customer_phones SET customer_id = $1 WHERE customer_id = ANY($2::text[])",
        survivor_id,
        others,
    )
    moved["customer_phones"] = int(status.split()[-1])
    for table in await _customer_tables(conn):
        status = await conn.execute(
            f'UPDATE "{table}" SET customer_id = $1 WHERE customer_id = ANY($2::text[])',
            survivor_id,
            others,
        )
        moved[table] = int(status.split()[-1])
    await customers.upsert_row(conn, survivor_id, after["name"], after["attributes"])
    await customers.set_tags(conn, survivor_id, after["tags"])
    await conn.execute("DELETE FROM customers WHERE id = ANY($1::text[])", others)
    await customers.set_owner(conn, survivor_id, after["owner"])
    for cid in others:
        await audit.record(
            conn,
            actor=actor,
            action="customer.merged_into",
            target_type="customer",
            target_id=cid,
            before=snapshots[cid],
            after={"merged_into": survivor_id},
        )
    await audit.record(
        conn,
        actor=actor,
        action="customer.merge",
        target_type="customer",
        target_id=survivor_id,
        before={"customers": [snapshots[cid] for cid in ids]},
        after={**after, "merged": others, "moved": moved, "policy": policy.as_json()},
    )
    merge_id = await conn.fetchval(
        "INSERT INTO customer_merges (actor, survivor_id, merged_ids, reason, policy, moved,"
        " before) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        actor,
        survivor_id,
        others,
        reason[:500],
        policy.as_json(),
        moved,
        [snapshots[cid] for cid in ids],
    )
    return MergeResult(merge_id, after, others, moved)


@dataclass(frozen=True, slots=True)
class MergeRecord:
    id: int
    at: str
    actor: str
    survivor_id: str
    merged_ids: list[str]
    reason: str
    moved: dict[str, int]
    crm_notified_at: str | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _record(row: Mapping[str, Any]) -> MergeRecord:
    notified = row["crm_notified_at"]
    return MergeRecord(
        row["id"],
        row["at"].isoformat(),
        row["actor"],
        row["survivor_id"],
        list(row["merged_ids"]),
        row["reason"],
        dict(row["moved"]),
        notified.isoformat() if notified else None,
    )


_MERGE_COLUMNS = "id, at, actor, survivor_id, merged_ids, reason, moved, crm_notified_at"


async def merges(
    pool: asyncpg.Pool[Any], *, customer: str | None = None, limit: int = 100
) -> list[MergeRecord]:
    """Past merges, newest first; `customer`: those it survived or disappeared in."""
    rows = await pool.fetch(
        f"SELECT {_MERGE_COLUMNS} FROM customer_merges"
        " WHERE $1::text IS NULL OR survivor_id = $1 OR $1 = ANY(merged_ids)"
        " ORDER BY id DESC LIMIT $2",
        customer,
        max(1, min(limit, 1000)),
    )
    return [_record(r) for r in rows]


async def pending_crm_merges(pool: Db, limit: int = 100) -> list[MergeRecord]:
    """Merges the CRM connector has not acknowledged, oldest first (for its delivery loop)."""
    rows = await pool.fetch(
        f"SELECT {_MERGE_COLUMNS} FROM customer_merges WHERE crm_notified_at IS NULL"
        " ORDER BY id LIMIT $1",
        limit,
    )
    return [_record(r) for r in rows]


async def mark_crm_notified(pool: Db, merge_id: int) -> None:
    await pool.execute("UPDATE customer_merges SET crm_notified_at = now() WHERE id = $1", merge_id)


async def deliver_pending_merges(
    pool: Db,
    tell: Callable[[MergeRecord], Awaitable[None]],
    *,
    limit: int = 100,
) -> int:
    """Tell the CRM connector of each merge it has not acknowledged, oldest first, marking
    each once `tell` returns. The first failure stops the batch (its exception propagates)
    and leaves that merge and the later ones pending, so the order is kept for the retry.
    Returns how many were told. (The connector's side: `tell` maps the merge onto its API,
    e.g. a REST CRM's merge endpoint; the built-in store needs nothing.)"""
    told = 0
    for record in await pending_crm_merges(pool, limit):
        await tell(record)
        await mark_crm_notified(pool, record.id)
        told += 1
    return told
