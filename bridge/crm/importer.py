"""Customer import from CSV (`crm-bridge customers import FILE.csv`).

The format (also in `crm-bridge customers import --help` and the README):
- UTF-8 (a BOM is allowed), comma-separated, RFC 4180 quoting: a cell holding a comma, a
  quote or a line break is quoted with `"`, and a quote inside it is doubled (`""`).
- A header row names the columns (case-insensitive): `name` and `phones` are required;
  `tags`, `owner` (an agent id) and `id` (the CRM's own customer id) are optional; any other
  column becomes an attribute. Within a cell, phones and tags are separated by `;`.
- The customer id is the `id` cell, else a stable one from the first phone (`tel-15551230001`).

Every row read ends in exactly one outcome, reported with its line number (where the row
starts): `created`, `updated` (with what changed), `unchanged`, or `rejected` with the reason.
A rejected row changes nothing at all: it is never imported in part. Rows are rejected for
an invalid phone or tag, a phone another customer owns (it is never moved or merged: use
`crm-bridge customers dedup`), a new customer without a phone, more cells than the header
has columns, a cell over 2000 characters (or over the CSV reader's 128 KiB limit), control
characters or invalid UTF-8, an unknown owner, a cell that is not of its column's declared
type, or a second row for the same customer.

Update semantics: a non-empty `phones`, `tags` or `owner` cell is the truth (the stored set
is replaced); a non-empty attribute cell overwrites that key, other keys stay. An empty cell
follows the `empty` policy: `keep` (default) leaves the stored value alone, `clear` removes
it (phones, tags, owner, or the attribute key). Importing the same file twice changes nothing.

Attribute types: `types` declares a column's type (`number`, `integer`, `boolean`, `text`);
a cell that is not of that type rejects its row. An undeclared column is inferred from the
file: all its cells numbers → numbers, otherwise text, except that a column mixing numbers
and text is an error before anything is written (so `lifetime_value>=10000` never silently
misses a customer stored as "10 000"). Leading-zero values such as `00123` are text.

`dry_run` runs everything inside one transaction that is rolled back: the same outcomes,
nothing kept. Otherwise each row is its own transaction, audited (actor `cli`, action
`customer.import`).
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import asyncpg

from bridge.crm import audit, customers
from bridge.crm.phones import to_e164
from bridge.db.errors import map_db_errors
from bridge.errors import DuplicatePhone, UsageError, ValidationError

MAX_FIELD = 2000  # characters in any one cell
MAX_NAME = 300
MAX_ID = 128
MAX_PHONES = 20
MAX_COLUMNS = 200
MAX_FILE_BYTES = 200 * 1024 * 1024
RESERVED = ("name", "phones", "tags", "owner", "id")
TYPES = ("number", "integer", "boolean", "text")
EMPTY_POLICIES = ("keep", "clear")
IMPORT_ACTION = "customer.import"

Outcome = Literal["created", "updated", "unchanged", "rejected"]
EmptyPolicy = Literal["keep", "clear"]

_TAG = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]+(?:[eE][+-]?[0-9]{1,3})?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile(r"[\udc80-\udcff]")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})


@dataclass(frozen=True, slots=True)
class RowResult:
    """What happened to one row: `detail` is the reason (rejected) or what changed."""

    line: int
    outcome: Outcome
    customer_id: str | None
    detail: str = ""

    def describe(self) -> str:
        who = f" {self.customer_id}" if self.customer_id else ""
        more = f": {self.detail}" if self.detail else ""
        return f"line {self.line}: {self.outcome}{who}{more}"


@dataclass
class ImportReport:
    rows: list[RowResult] = field(default_factory=list)
    dry_run: bool = False

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.rows if r.outcome == outcome)

    @property
    def rejected(self) -> list[RowResult]:
        return [r for r in self.rows if r.outcome == "rejected"]

    @property
    def ok(self) -> bool:
        return not self.rejected

    def summary(self) -> str:
        head = "dry run, nothing written: " if self.dry_run else ""
        return (
            f"{head}{len(self.rows)} rows read: {self.count('created')} created,"
            f" {self.count('updated')} updated, {self.count('unchanged')} unchanged,"
            f" {self.count('rejected')} rejected"
        )


@dataclass(frozen=True, slots=True)
class ImportOptions:
    types: Mapping[str, str] = field(default_factory=dict)  # attribute column -> TYPES
    empty: EmptyPolicy = "keep"
    dry_run: bool = False


def parse_types(text: str) -> dict[str, str]:
    """`lifetime_value=number,vip_since=text` → {column: type}; UsageError otherwise."""
    declared: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        column, sep, kind = part.partition("=")
        column, kind = column.strip(), kind.strip().lower()
        if not sep or not column or kind not in TYPES:
            raise UsageError(
                f"--types {part[:80]!r}: write COLUMN=TYPE with TYPE one of {', '.join(TYPES)}"
            )
        declared[column] = kind
    return declared


@dataclass
class CustomerRow:
    """A checked row. None means "the cell was empty": what happens then is the policy's."""

    line: int
    id: str
    name: str
    phones: list[str] | None
    tags: list[str] | None
    owner: str | None
    attributes: dict[str, Any]
    empty_attributes: list[str]
    derived_id: bool = False  # the id came from the first phone


class Rejected(Exception):
    """A row that must change nothing; the message is the reason shown to the admin."""


def attribute_value(text: str) -> Any:
    """`10000` → 10000, `2.5` → 2.5, anything else (incl. `00123`, `1e999`) → the text."""
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        number = float(text)
        if math.isfinite(number):
            return number
    return text


def typed_value(text: str, kind: str) -> Any:
    """The cell as its declared type; ValueError (with the reason) when it is not one."""
    if kind == "text":
        return text
    if kind == "boolean":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError("is not a boolean (true/false, yes/no, 1/0)")
    value = attribute_value(text)
    if kind == "integer" and not isinstance(value, int):
        raise ValueError("is not an integer")
    if kind == "number" and not isinstance(value, (int, float)):
        raise ValueError("is not a number")
    return value


def _cell(row: list[str], index: int | None) -> str:
    if index is None or index >= len(row):
        return ""
    return row[index].strip()


class _Columns:
    def __init__(self, header: list[str], types: Mapping[str, str]) -> None:
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
        self.width = len(names)
        self.index = {n: lowered.index(n) for n in RESERVED if n in lowered}
        self.attributes: list[tuple[int, str]] = []
        for i, name in enumerate(names):
            if lowered[i] in RESERVED:
                continue
            if not name or _CONTROL.search(name) or _SURROGATE.search(name) or len(name) > 64:
                raise ValidationError("header", f"column {i + 1} needs a short printable name")
            self.attributes.append((i, name))
        attribute_names = {name for _, name in self.attributes}
        for column in types:
            if column not in attribute_names:
                raise UsageError(
                    f"--types names {column[:64]!r}, which is not an attribute column of the"
                    f" file ({', '.join(sorted(attribute_names)) or 'none'})"
                )
        self.types = dict(types)


def read_rows(
    text_lines: io.TextIOBase | Iterator[str],
) -> tuple[list[str], list[tuple[int, list[str] | str]]]:
    """The header and every non-blank row with the line it starts on; a row the CSV reader
    cannot read is its error text (the reader goes on with the next line)."""
    reader = csv.reader(text_lines, strict=False)
    try:
        header = next(reader)
    except StopIteration:
        raise ValidationError("header", "the file is empty") from None
    except csv.Error as exc:
        raise ValidationError("header", f"not CSV: {exc}") from exc
    if any(_SURROGATE.search(h) for h in header):
        raise ValidationError("header", "not valid UTF-8")
    rows: list[tuple[int, list[str] | str]] = []
    last_line = reader.line_num
    while True:
        line = last_line + 1
        try:
            row = next(reader)
        except StopIteration:
            return header, rows
        except csv.Error as exc:
            rows.append((line, f"not readable as CSV: {exc}"))
            last_line = reader.line_num
            continue
        last_line = reader.line_num
        if any(cell.strip() for cell in row):
            rows.append((line, row))


def infer_types(columns: _Columns, rows: list[tuple[int, list[str] | str]]) -> dict[str, str]:
    """Undeclared attribute columns: `number` when every cell is one, else `text`;
    UsageError for a column that mixes both (the admin must say which it is)."""
    inferred: dict[str, str] = {}
    for index, name in columns.attributes:
        if name in columns.types:
            continue
        numbers: list[int] = []
        texts: list[tuple[int, str]] = []
        for line, row in rows:
            if isinstance(row, str):
                continue
            cell = _cell(row, index)
            if not cell or len(cell) > MAX_FIELD:
                continue
            if isinstance(attribute_value(cell), str):
                texts.append((line, cell))
            else:
                numbers.append(line)
        if numbers and texts:
            line, cell = texts[0]
            raise UsageError(
                f"column {name!r} mixes numbers (line {numbers[0]}) and text (line {line}:"
                f" {cell[:40]!r}): declare it with --types {name}=number (text cells are then"
                f" rejected) or --types {name}=text; nothing was imported"
            )
        inferred[name] = "number" if numbers else "text"
    return inferred


def check_row(
    row: list[str], line: int, columns: _Columns, types: Mapping[str, str], region: str
) -> CustomerRow:
    """A CSV row → a checked CustomerRow; Rejected with the reason otherwise (pure)."""
    if len(row) > columns.width:
        extra = [c for c in row[columns.width :] if c.strip()]
        if extra:
            raise Rejected(
                f"{len(row)} cells but the header names {columns.width} columns: the extra"
                f" cell {extra[0][:40]!r} has no column (quote cells that hold a comma)"
            )
    if any(_SURROGATE.search(cell) for cell in row):
        raise Rejected("not valid UTF-8")
    if any(len(cell) > MAX_FIELD for cell in row):
        raise Rejected(f"a cell is longer than {MAX_FIELD} characters")
    if any(_CONTROL.search(cell) for cell in row):
        raise Rejected("control characters (CR, LF, NUL, ...) in a cell")
    name = _cell(row, columns.index.get("name"))
    if not name:
        raise Rejected("no name")
    if len(name) > MAX_NAME:
        raise Rejected(f"name longer than {MAX_NAME} characters")
    phone_cell = _cell(row, columns.index.get("phones"))
    phones: list[str] = []
    for raw in filter(None, (p.strip() for p in phone_cell.split(";"))):
        e164 = to_e164(raw, region)
        if e164 is None:
            raise Rejected(f"phone {raw[:40]!r} is not a valid number")
        if e164 not in phones:
            phones.append(e164)
    if len(phones) > MAX_PHONES:
        raise Rejected(f"more than {MAX_PHONES} phones")
    tags: list[str] = []
    tag_cell = _cell(row, columns.index.get("tags"))
    for tag in filter(None, (t.strip() for t in tag_cell.split(";"))):
        if not _TAG.fullmatch(tag):
            raise Rejected(f"tag {tag[:70]!r} is not 1-64 of A-Z a-z 0-9 _ . : -")
        if tag not in tags:
            tags.append(tag)
    given_id = _cell(row, columns.index.get("id"))
    customer_id = given_id
    if not customer_id:
        if not phones:
            raise Rejected("no id and no phone to derive one from")
        customer_id = "tel-" + phones[0].lstrip("+")
    if len(customer_id) > MAX_ID:
        raise Rejected(f"id longer than {MAX_ID} characters")
    attributes: dict[str, Any] = {}
    empty: list[str] = []
    for index, key in columns.attributes:
        cell = _cell(row, index)
        if not cell:
            empty.append(key)
            continue
        kind = types[key]
        try:
            attributes[key] = typed_value(cell, kind)
        except ValueError as exc:
            raise Rejected(
                f"column {key!r}: {cell[:40]!r} {exc} (declared --types {key}={kind})"
                if key in columns.types
                else f"column {key!r}: {cell[:40]!r} {exc}"
            ) from None
    owner_cell = _cell(row, columns.index.get("owner"))
    return CustomerRow(
        line=line,
        id=customer_id,
        name=name,
        phones=phones or None,
        tags=tags or None,
        owner=owner_cell or None,
        attributes=attributes,
        empty_attributes=empty,
        derived_id=not given_id,
    )


def wanted_state(
    row: CustomerRow,
    before: Mapping[str, Any] | None,
    policy: EmptyPolicy,
    present: frozenset[str] = frozenset(RESERVED),
) -> dict[str, Any]:
    """The customer as the row wants it, from what is stored (None: not yet) (pure).
    `present`: the file's reserved columns; an absent `tags` or `owner` column leaves the
    stored value alone whatever the policy."""
    clear = policy == "clear"
    old_phones = list(before["phones"]) if before else []
    old_tags = list(before["tags"]) if before else []
    old_owner = before["owner"] if before else None
    attributes = dict(before["attributes"]) if before else {}
    attributes.update(row.attributes)
    if clear:
        for key in row.empty_attributes:
            attributes.pop(key, None)
    phones = row.phones if row.phones is not None else ([] if clear else old_phones)
    if row.tags is not None:
        tags = sorted(row.tags)
    else:
        tags = [] if clear and "tags" in present else sorted(old_tags)
    owner: str | None = old_owner
    if row.owner is not None:
        owner = row.owner
    elif clear and "owner" in present:
        owner = None
    return {
        "id": row.id,
        "name": row.name,
        "phones": phones,
        "tags": tags,
        "attributes": attributes,
        "owner": owner,
    }


def _changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    changed = []
    for key in ("name", "phones", "tags", "attributes", "owner"):
        old, new = before[key], after[key]
        if key == "phones":
            old, new = sorted(old), sorted(new)
        if old != new:
            changed.append(key)
    return changed


async def _apply(
    conn: customers.Conn, row: CustomerRow, options: ImportOptions, present: frozenset[str]
) -> RowResult:
    """Bring one customer to the row's state inside the caller's transaction; Rejected
    (the caller rolls the row back) when it cannot be done whole."""
    before = customers.snapshot(await customers.lock(conn, row.id))
    after = wanted_state(row, before, options.empty, present)
    if before is None and not after["phones"]:
        raise Rejected("no phone: a new customer needs at least one")
    if before is not None:
        changed = _changes(before, after)
        if not changed:
            return RowResult(row.line, "unchanged", row.id)
    for e164 in after["phones"]:
        owner = await customers.find_by_phone(conn, e164)
        if owner is not None and owner != row.id:
            raise Rejected(
                f"phone {e164} already belongs to customer {owner} (never moved by an import;"
                " see `crm-bridge customers dedup`)"
            )
    try:
        attrs = customers.attributes(after["attributes"])
    except ValidationError as exc:
        raise Rejected(str(exc)) from None
    await customers.upsert_row(conn, row.id, row.name, attrs)
    try:
        await customers.set_phones(conn, row.id, after["phones"])
    except DuplicatePhone as exc:
        raise Rejected(str(exc)) from None
    await customers.set_tags(conn, row.id, after["tags"])
    await customers.set_owner(conn, row.id, after["owner"])
    await audit.record(
        conn,
        actor=audit.CLI_ACTOR,
        action=IMPORT_ACTION,
        target_type="customer",
        target_id=row.id,
        before=before,
        after=after,
    )
    if before is None:
        return RowResult(row.line, "created", row.id)
    return RowResult(row.line, "updated", row.id, "changed " + ", ".join(changed))


async def import_rows(
    pool: asyncpg.Pool[Any],
    lines: io.TextIOBase | Iterator[str],
    region: str,
    options: ImportOptions | None = None,
) -> ImportReport:
    """Import CSV text (an iterable of lines, `newline=''` style) into the CRM tables.

    ValidationError / UsageError (nothing written) for a header or column types that make
    the whole file unusable; every row otherwise gets its RowResult."""
    options = options or ImportOptions()
    header, raw_rows = read_rows(lines)
    columns = _Columns(header, options.types)
    types = {**infer_types(columns, raw_rows), **columns.types}
    report = ImportReport(dry_run=options.dry_run)
    with map_db_errors("customer import stopped"):
        agent_ids = {r["id"] for r in await pool.fetch("SELECT id FROM agents")}
        async with pool.acquire() as conn:
            outer = conn.transaction()
            if options.dry_run:
                await outer.start()
            try:
                await _import_each(conn, raw_rows, columns, types, region, options, agent_ids,
                                   report)  # fmt: skip
            finally:
                if options.dry_run:
                    await outer.rollback()
    return report


async def _import_each(
    conn: customers.Conn,
    raw_rows: list[tuple[int, list[str] | str]],
    columns: _Columns,
    types: Mapping[str, str],
    region: str,
    options: ImportOptions,
    agent_ids: set[str],
    report: ImportReport,
) -> None:
    seen: dict[str, int] = {}  # customer id -> line that gave it
    for line, raw in raw_rows:
        cid: str | None = None
        try:
            if isinstance(raw, str):
                raise Rejected(raw)
            row = check_row(raw, line, columns, types, region)
            cid = row.id
            if row.id in seen:
                what = "phone" if row.derived_id else "id"
                raise Rejected(f"same customer ({what} {row.id}) as line {seen[row.id]}")
            seen[row.id] = line
            if row.owner and row.owner not in agent_ids:
                raise Rejected(f"owner {row.owner[:64]!r} is not an agent")
            try:
                async with conn.transaction():
                    result = await _apply(conn, row, options, frozenset(columns.index))
            except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as exc:
                raise Rejected(f"refused by the database: {exc}") from None
        except Rejected as exc:
            result = RowResult(line, "rejected", cid, str(exc))
        report.rows.append(result)


async def import_file(
    pool: asyncpg.Pool[Any], path: Path, region: str, options: ImportOptions | None = None
) -> ImportReport:
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
    return await import_rows(pool, text, region, options)
