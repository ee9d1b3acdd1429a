"""Customer import from CSV (`crm-bridge customers import FILE.csv`).

Columns: `name` and `phones` are required; `tags`, `owner` and `id` are optional; any other
column becomes an attribute. Within a cell, phones and tags are separated by `;`.

Rules, chosen so that importing the same file again changes nothing:
- The customer id is the `id` column, else a stable one from the first valid phone
  (`tel-15551230001`). A row with neither is reported.
- The file is the truth for the customer's phones, tags and (when the column exists) owner:
  missing ones are added, others removed. Attributes are merged: the file's non-empty cells
  overwrite those keys, other keys stay. Cells that parse as numbers become numbers
  (`10000` → 10000, `2.5` → 2.5), except leading-zero values such as `00123`, which stay
  text (postal codes, account numbers).
- A phone already owned by ANOTHER customer (in the database or earlier in the file) is
  reported and skipped; the rest of the row is imported. It is never moved or merged.
- Invalid phones and tags are reported and skipped. A row with no name, invalid UTF-8,
  control characters, an unknown owner or an oversized field is reported and skipped whole.
- Each row is its own transaction.
The command exits 0 when the file was imported (reported rows are listed on stderr, with
their line numbers), 2 for a file that cannot be read as this CSV (no such file, missing
header columns), as the CONTRACT's exit statuses say.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from bridge.crm.phones import normalise
from bridge.errors import CrmUnavailable, UsageError, ValidationError

MAX_FIELD = 2000  # characters in any one cell
MAX_NAME = 300
MAX_ID = 128
MAX_PHONES = 20
MAX_COLUMNS = 200
MAX_FILE_BYTES = 200 * 1024 * 1024
RESERVED = ("name", "phones", "tags", "owner", "id")

_TAG = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]+(?:[eE][+-]?[0-9]{1,3})?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile(r"[\udc80-\udcff]")
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)

    def problem(self, line: int, message: str) -> None:
        self.problems.append((line, message))

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        lines = len({line for line, _ in self.problems})
        return (
            f"customers: {self.created} created, {self.updated} updated,"
            f" {self.unchanged} unchanged, {self.skipped} rows skipped,"
            f" {lines} rows reported"
        )


@dataclass
class CustomerRow:
    line: int
    id: str
    name: str
    phones: list[str]
    tags: list[str]
    owner: str | None  # None: no owner column (leave as is); "": no owner
    attributes: dict[str, Any]
    derived_id: bool = False  # the id came from the first phone


def attribute_value(text: str) -> Any:
    """`10000` → 10000, `2.5` → 2.5, anything else (incl. `00123`, `1e999`) → the text."""
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        number = float(text)
        if math.isfinite(number):
            return number
    return text


def _cell(row: list[str], index: int | None) -> str:
    if index is None or index >= len(row):
        return ""
    return row[index].strip()


class _Columns:
    def __init__(self, header: list[str]) -> None:
        names = [h.strip().lstrip("\ufeff").strip() for h in header]
        if len(names) > MAX_COLUMNS:
            raise ValidationError("header", f"at most {MAX_COLUMNS} columns")
        lowered = [n.lower() for n in names]
        for required in ("name", "phones"):
            if required not in lowered:
                raise ValidationError("header", f"needs a {required!r} column")
        seen: set[str] = set()
        for name in lowered:
            if name in seen:
                raise ValidationError("header", f"column {name!r} appears twice")
            seen.add(name)
        self.index = {n: lowered.index(n) for n in RESERVED if n in lowered}
        self.attributes: list[tuple[int, str]] = []
        for i, name in enumerate(names):
            if lowered[i] in RESERVED:
                continue
            if not name or _CONTROL.search(name) or _SURROGATE.search(name) or len(name) > 64:
                raise ValidationError("header", f"column {i + 1} needs a short printable name")
            self.attributes.append((i, name))
        self.has_owner = "owner" in self.index


def parse_rows(
    text_lines: io.TextIOBase | Iterator[str], region: str, report: ImportReport
) -> Iterator[CustomerRow]:
    """CSV rows → checked CustomerRow; problems go to `report` with their line numbers."""
    reader = csv.reader(text_lines, strict=False)
    try:
        header = next(reader)
    except StopIteration:
        raise ValidationError("header", "the file is empty") from None
    except csv.Error as exc:
        raise ValidationError("header", f"not CSV: {exc}") from exc
    if any(_SURROGATE.search(h) for h in header):
        raise ValidationError("header", "not valid UTF-8")
    columns = _Columns(header)
    last_line = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            report.problem(reader.line_num, f"not CSV: {exc}; rest of the file ignored")
            report.skipped += 1
            return
        line, last_line = last_line + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue  # blank line
        parsed = _check_row(row, line, columns, region, report)
        if parsed is None:
            report.skipped += 1
        else:
            yield parsed


def _check_row(
    row: list[str], line: int, columns: _Columns, region: str, report: ImportReport
) -> CustomerRow | None:
    if any(_SURROGATE.search(cell) for cell in row):
        report.problem(line, "not valid UTF-8; row skipped")
        return None
    if any(len(cell) > MAX_FIELD for cell in row):
        report.problem(line, f"a field is longer than {MAX_FIELD} characters; row skipped")
        return None
    if any(_CONTROL.search(cell) for cell in row):
        report.problem(line, "control characters (CR, LF, NUL, ...) in a field; row skipped")
        return None
    name = _cell(row, columns.index.get("name"))
    if not name:
        report.problem(line, "no name; row skipped")
        return None
    if len(name) > MAX_NAME:
        report.problem(line, f"name longer than {MAX_NAME} characters; row skipped")
        return None
    phones: list[str] = []
    raw_phones = [p.strip() for p in _cell(row, columns.index.get("phones")).split(";")]
    for raw in filter(None, raw_phones):
        e164 = normalise(raw, region)
        if e164 is None:
            report.problem(line, f"phone {raw[:40]!r} is not a valid number; skipped")
        elif e164 not in phones:
            phones.append(e164)
    if len(phones) > MAX_PHONES:
        report.problem(line, f"more than {MAX_PHONES} phones; row skipped")
        return None
    tags: list[str] = []
    for tag in filter(None, (t.strip() for t in _cell(row, columns.index.get("tags")).split(";"))):
        if not _TAG.fullmatch(tag):
            report.problem(line, f"tag {tag[:70]!r} is not 1-64 of A-Z a-z 0-9 _ . : -; skipped")
        elif tag not in tags:
            tags.append(tag)
    customer_id = _cell(row, columns.index.get("id"))
    if not customer_id:
        if not phones:
            report.problem(line, "no id and no valid phone to derive one from; row skipped")
            return None
        customer_id = "tel-" + phones[0].lstrip("+")
    if len(customer_id) > MAX_ID:
        report.problem(line, f"id longer than {MAX_ID} characters; row skipped")
        return None
    owner = _cell(row, columns.index.get("owner")) if columns.has_owner else None
    attributes = {
        key: attribute_value(_cell(row, index))
        for index, key in columns.attributes
        if _cell(row, index)
    }
    return CustomerRow(
        line,
        customer_id,
        name,
        phones,
        tags,
        owner,
        attributes,
        derived_id=not _cell(row, columns.index.get("id")),
    )


async def _apply(conn: Any, row: CustomerRow, report: ImportReport) -> bool:
    """Upsert one customer (inside the caller's transaction); False if the row was skipped."""
    owners = {
        r["e164"]: r["customer_id"]
        for r in await conn.fetch(
            "SELECT e164, customer_id FROM customer_phones WHERE e164 = ANY($1::text[])",
            row.phones,
        )
    }
    first_owner = owners.get(row.phones[0]) if row.phones else None
    if row.derived_id and first_owner not in (None, row.id):
        report.problem(
            row.line,
            f"phone {row.phones[0]} already belongs to customer {first_owner} and the row"
            " has no id; row skipped",
        )
        return False
    before = await conn.fetchrow(
        "SELECT name, attributes FROM customers WHERE id = $1 FOR UPDATE", row.id
    )
    changed = False
    if before is None:
        await conn.execute(
            "INSERT INTO customers (id, name, attributes) VALUES ($1, $2, $3)",
            row.id,
            row.name,
            row.attributes,
        )
    else:
        merged = {**before["attributes"], **row.attributes}
        if before["name"] != row.name or json.dumps(merged, sort_keys=True) != json.dumps(
            before["attributes"], sort_keys=True
        ):
            await conn.execute(
                "UPDATE customers SET name = $2, attributes = $3, updated_at = now() WHERE id = $1",
                row.id,
                row.name,
                merged,
            )
            changed = True
    # Phones: the file's phones, minus those another customer owns.
    keep: list[str] = []
    for phone in row.phones:
        owner = owners.get(phone)
        if owner is not None and owner != row.id:
            report.problem(row.line, f"phone {phone} already belongs to customer {owner}; skipped")
            continue
        keep.append(phone)
        if owner is None:
            await conn.execute(
                "INSERT INTO customer_phones (e164, customer_id) VALUES ($1, $2)", phone, row.id
            )
            changed = True
    status = await conn.execute(
        "DELETE FROM customer_phones WHERE customer_id = $1 AND NOT (e164 = ANY($2::text[]))",
        row.id,
        keep,
    )
    changed |= status != "DELETE 0"
    status = await conn.execute(
        "DELETE FROM customer_tags WHERE customer_id = $1 AND NOT (tag = ANY($2::text[]))",
        row.id,
        row.tags,
    )
    changed |= status != "DELETE 0"
    status = await conn.execute(
        "INSERT INTO customer_tags (customer_id, tag) SELECT $1, unnest($2::text[])"
        " ON CONFLICT DO NOTHING",
        row.id,
        row.tags,
    )
    changed |= status != "INSERT 0 0"
    if row.owner is not None:
        if row.owner:
            status = await conn.execute(
                "INSERT INTO customer_owners (customer_id, agent_id) VALUES ($1, $2)"
                " ON CONFLICT (customer_id) DO UPDATE SET agent_id = EXCLUDED.agent_id,"
                " since = now() WHERE customer_owners.agent_id <> EXCLUDED.agent_id",
                row.id,
                row.owner,
            )
            changed |= status != "INSERT 0 0"
        else:
            status = await conn.execute(
                "DELETE FROM customer_owners WHERE customer_id = $1", row.id
            )
            changed |= status != "DELETE 0"
    if before is None:
        report.created += 1
    elif changed:
        report.updated += 1
    else:
        report.unchanged += 1
    return True


async def import_rows(
    pool: asyncpg.Pool[Any],
    lines: io.TextIOBase | Iterator[str],
    region: str,
    report: ImportReport | None = None,
) -> ImportReport:
    """Import CSV text (an iterable of lines, `newline=''` style) into the CRM tables."""
    report = report or ImportReport()
    try:
        agent_ids = {r["id"] for r in await pool.fetch("SELECT id FROM agents")}
        seen: dict[str, int] = {}  # customer id -> line that gave it
        for row in parse_rows(lines, region, report):
            if row.id in seen:
                what = "phone" if row.derived_id else "id"
                report.problem(
                    row.line,
                    f"same customer ({what} {row.id}) as line {seen[row.id]}; row skipped",
                )
                report.skipped += 1
                continue
            seen[row.id] = row.line
            if row.owner and row.owner not in agent_ids:
                report.problem(row.line, f"owner {row.owner[:64]!r} is not an agent; row skipped")
                report.skipped += 1
                continue
            try:
                async with pool.acquire() as conn, conn.transaction():
                    applied = await _apply(conn, row, report)
                if not applied:
                    report.skipped += 1
            except asyncpg.IntegrityConstraintViolationError as exc:
                report.problem(row.line, f"rejected by the database: {exc}; row skipped")
                report.skipped += 1
            except asyncpg.DataError as exc:
                report.problem(row.line, f"rejected by the database: {exc}; row skipped")
                report.skipped += 1
    except _DB_ERRORS as exc:
        raise CrmUnavailable(f"customer import stopped: {exc}") from exc
    return report


async def import_file(pool: asyncpg.Pool[Any], path: Path, region: str) -> ImportReport:
    """Import a CSV file; UsageError if it cannot be read or is too large."""

    def read() -> bytes:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise UsageError(f"{path} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
        return data

    try:
        data = await asyncio.to_thread(read)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    text = io.StringIO(data.decode("utf-8", errors="surrogateescape"), newline="")
    return await import_rows(pool, text, region)
