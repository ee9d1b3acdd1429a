"""Likely duplicate customers (`crm-bridge customers dedup`): found, shown, never merged here.

A phone belongs to one customer (the primary key on `customer_phones.e164`), so the same
person shows up twice through what the key cannot see:
- **the same phone in another format**: a number kept in an attribute (`mobile`,
  `phone2`, ...) or in an id derived from a phone (`tel-15551230001`) that normalises to a
  phone of another customer;
- **the same e-mail**: attributes named like `email`/`e-mail`/`mail`, compared trimmed and
  case-folded;
- **the same name with a shared attribute**: names compared case-folded, without accents,
  punctuation or word order ("Chen, Alice" = "alice chen"), and sharing an owner or an
  attribute value (same `company`, same `city`...). A shared name alone is not enough.

Groups are the connected sets of such pairs, each with the reasons that joined it.
`find_groups` is pure (tested by tables); `load_customers` reads what it needs.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bridge.crm.phones import to_e164

_PHONE_KEY = re.compile(r"phone|mobile|cell|tel|fax|whatsapp", re.IGNORECASE)
_EMAIL_KEY = re.compile(r"^e?-?mail(_?address)?$|email", re.IGNORECASE)
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}")
_WORD = re.compile(r"\w+")
_DERIVED_ID = re.compile(r"tel-([1-9][0-9]{5,14})")


@dataclass(frozen=True, slots=True)
class Record:
    """What dedup looks at of one customer."""

    id: str
    name: str
    phones: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class Group:
    ids: tuple[str, ...]  # sorted
    reasons: tuple[str, ...]


def name_key(name: str) -> str:
    """`Chen, Alice` and ` alice  CHÉN ` give the same key."""
    plain = unicodedata.normalize("NFKD", name)
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch)).casefold()
    return " ".join(sorted(_WORD.findall(plain)))


def _other_numbers(record: Record, region: str) -> set[str]:
    """Numbers of this customer outside its phone list, normalised to E.164."""
    found: set[str] = set()
    for key, value in record.attributes.items():
        if _PHONE_KEY.search(key) and isinstance(value, (str, int)):
            for part in str(value).split(";"):
                e164 = to_e164(part.strip(), region)
                if e164:
                    found.add(e164)
    derived = _DERIVED_ID.fullmatch(record.id)
    if derived:
        found.add("+" + derived.group(1))
    return found - set(record.phones)


def _emails(record: Record) -> set[str]:
    out = set()
    for key, value in record.attributes.items():
        if _EMAIL_KEY.search(key) and isinstance(value, str):
            text = value.strip().casefold()
            if _EMAIL.fullmatch(text):
                out.add(text)
    return out


def _shared_attribute(a: Record, b: Record) -> str | None:
    if a.owner and a.owner == b.owner:
        return f"owner {a.owner}"
    for key in sorted(set(a.attributes) & set(b.attributes)):
        va, vb = a.attributes[key], b.attributes[key]
        if va not in (None, "") and not isinstance(va, (dict, list)) and va == vb:
            return f"{key} {str(va)[:40]!r}"
    return None


def find_groups(records: Sequence[Record], region: str) -> list[Group]:
    """The groups of likely duplicates, largest first, then by first id (pure)."""
    parent = {r.id: r.id for r in records}
    reasons: dict[str, list[str]] = {}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def join(a: str, b: str, why: str) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[rb] = ra
            reasons[ra] = reasons.pop(ra, []) + reasons.pop(rb, [])
        reasons.setdefault(ra, [])
        if why not in reasons[ra]:
            reasons[ra].append(why)

    phone_owner = {e164: r.id for r in records for e164 in r.phones}
    for r in records:
        for e164 in sorted(_other_numbers(r, region)):
            other = phone_owner.get(e164)
            if other is not None and other != r.id:
                join(other, r.id, f"same phone {e164} ({other}: phone, {r.id}: other format)")
    by_email: dict[str, str] = {}
    for r in records:
        for email in sorted(_emails(r)):
            if email in by_email and by_email[email] != r.id:
                join(by_email[email], r.id, f"same e-mail {email}")
            by_email.setdefault(email, r.id)
    by_name: dict[str, list[Record]] = {}
    for r in records:
        key = name_key(r.name)
        if key:
            by_name.setdefault(key, []).append(r)
    for key, same in by_name.items():
        for i, a in enumerate(same):
            for b in same[i + 1 :]:
                shared = _shared_attribute(a, b)
                if shared:
                    join(a.id, b.id, f"same name {key!r} and {shared}")
    members: dict[str, list[str]] = {}
    for r in records:
        members.setdefault(root(r.id), []).append(r.id)
    groups = [
        Group(tuple(sorted(ids)), tuple(reasons.get(top, [])))
        for top, ids in members.items()
        if len(ids) > 1
    ]
    return sorted(groups, key=lambda g: (-len(g.ids), g.ids))


async def load_customers(pool: asyncpg.Pool[Any]) -> list[Record]:
    rows = await pool.fetch(
        "SELECT c.id, c.name, c.attributes,"
        " coalesce((SELECT array_agg(p.e164 ORDER BY p.e164) FROM customer_phones p"
        "           WHERE p.customer_id = c.id), '{}') AS phones,"
        " (SELECT o.agent_id FROM customer_owners o WHERE o.customer_id = c.id) AS owner"
        " FROM customers c ORDER BY c.id"
    )
    return [
        Record(r["id"], r["name"], tuple(r["phones"]), r["attributes"] or {}, r["owner"])
        for r in rows
    ]


def describe(groups: Iterable[Group]) -> list[str]:
    """Text for the admin: each group, its reasons, and the command that would merge it."""
    out: list[str] = []
    for n, group in enumerate(groups, 1):
        out.append(f"group {n}: {' '.join(group.ids)}")
        out.extend(f"  because {why}" for why in group.reasons)
        out.append(
            f"  merge with: crm-bridge customers merge {group.ids[0]} {' '.join(group.ids[1:])}"
        )
    return out
