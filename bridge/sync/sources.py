"""The PBX's own CDR store (`[pbx] cdr_source`), read as `PbxCdr`s for reconciliation.

Asterisk writes a CDR per channel whether or not the bridge is running, so these are the
calls' record of last resort. Two backends, as Asterisk 22 writes them:

`csv:PATH` - cdr_csv's `Master.csv` (cdr/cdr_csv.c `build_csv_record`). Columns, in order:
accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata, start, answer,
end, duration, billsec, disposition, amaflags, then uniqueid if `loguniqueid`, userfield if
`loguserfield`, and peeraccount, linkedid, sequence if `newcdrcolumns`. Strings and dates
are quoted with `"` doubled inside; integers are bare; an empty date is an empty cell. Nothing
is escaped, so a CR/LF inside a value (a caller name) continues the record on the next line.
Which optional columns exist is told by the count (17: uniqueid; 18: + userfield; 20:
uniqueid + the new columns; 21: all); the bridge needs `loguniqueid = yes` to tie a CDR to a
call. Dates are `YYYY-MM-DD HH:MM:SS` in the PBX's local time unless `usegmtime = yes`:
`[pbx] cdr_timezone` says which zone that is (UTC by default, i.e. `usegmtime = yes`).

`postgresql://…?table=NAME` - cdr_pgsql's table with its documented columns (calldate, clid,
src, dst, dcontext, channel, dstchannel, lastapp, lastdata, duration, billsec, disposition,
amaflags, accountcode, uniqueid, userfield, peeraccount, linkedid, sequence). It has no
answer or end time: end = calldate + duration, answer = end - billsec when billsec > 0.
A `timestamp` column without zone is read in `[pbx] cdr_timezone`.

Every line is hostile input: a bad one becomes a `problem` naming its line and reason,
never a crash and never a silent skip.
"""

from __future__ import annotations

import asyncio
import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from bridge.db.errors import DB_ERRORS
from bridge.errors import ConfigError
from bridge.records.cdr import PbxCdr, parse_cdr_time

__all__ = [
    "CdrBatch",
    "CdrSource",
    "CsvCdrSource",
    "PgsqlCdrSource",
    "build_cdr_source",
    "parse_master_csv",
]

MAX_RECORD_BYTES = 64 * 1024  # one CDR line (cdr_csv's own buffer is 2 KiB per record)
MAX_PROBLEMS = 1000  # listed in full; beyond that only counted
_BASE = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
)
_LAYOUTS: dict[int, tuple[str, ...]] = {
    17: (*_BASE, "uniqueid"),
    18: (*_BASE, "uniqueid", "userfield"),
    20: (*_BASE, "uniqueid", "peeraccount", "linkedid", "sequence"),
    21: (*_BASE, "uniqueid", "userfield", "peeraccount", "linkedid", "sequence"),
}
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}(?:\.[A-Za-z_][A-Za-z0-9_]{0,62})?")
_DISPOSITIONS = {"ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION"}


@dataclass
class CdrBatch:
    """CDRs read from a source, and what could not be read (line: reason)."""

    cdrs: list[PbxCdr] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)


class CdrSource(Protocol):
    description: str

    async def read(self, since: datetime | None) -> CdrBatch: ...


# --- cdr_csv ---------------------------------------------------------------------------------


def _records(data: bytes) -> Iterator[tuple[int, bytes | None]]:
    """(first line number, raw record) per CSV record: a record goes on over line breaks
    while a quote is open (a value holding CR/LF). None: the record outgrew
    `MAX_RECORD_BYTES` (a huge cell or a runaway quote); reading resumes after it."""
    start, size, quotes = 1, 0, 0
    parts: list[bytes] = []
    for line_no, raw in enumerate(data.splitlines(keepends=True), start=1):
        if not parts:
            start = line_no
        parts.append(raw)
        size += len(raw)
        quotes += raw.count(b'"')
        if size > MAX_RECORD_BYTES:
            yield start, None
        elif quotes % 2 == 0:
            yield start, b"".join(parts)
        else:
            continue
        parts, size, quotes = [], 0, 0
    if parts:
        yield start, b"".join(parts)  # a quote never closed (torn last write): csv says so


def _cells(record: bytes) -> list[str]:
    text = record.replace(b"\x00", b"").decode("utf-8", "replace")
    text = text.rstrip("\r\n")
    rows = list(csv.reader([text], strict=True))
    return rows[0] if rows else []


def _int_cell(value: str, name: str) -> int:
    text = value.strip()
    if not re.fullmatch(r"-?\d{1,10}", text):
        raise ValueError(f"{name} is not a number: {text[:40]!r}")
    return max(0, int(text))


def _time_cell(value: str, name: str, zone: tzinfo) -> datetime | None:
    if not value.strip():
        return None
    parsed = parse_cdr_time(value, zone)
    if parsed is None:
        raise ValueError(f"{name} is not a date: {value[:40]!r}")
    return parsed


def _cdr_from_row(cells: list[str], zone: tzinfo) -> PbxCdr:
    layout = _LAYOUTS.get(len(cells))
    if layout is None:
        if len(cells) == 16:
            raise ValueError("16 columns: no uniqueid; set loguniqueid = yes in cdr.conf [csv]")
        raise ValueError(f"{len(cells)} columns, expected 17, 18, 20 or 21")
    row = dict(zip(layout, cells, strict=True))
    uniqueid = row["uniqueid"].strip()
    if not uniqueid or len(uniqueid) > 150 or any(c in uniqueid for c in "\r\n\t "):
        raise ValueError(f"bad uniqueid {uniqueid[:40]!r} (is loguniqueid = yes?)")
    disposition = row["disposition"].strip().upper()
    if disposition not in _DISPOSITIONS:
        raise ValueError(f"unknown disposition {disposition[:40]!r}")
    start = _time_cell(row["start"], "start", zone)
    if start is None:
        raise ValueError("no start time")
    return PbxCdr.from_dict(
        {
            "uniqueid": uniqueid,
            "channel": row["channel"],
            "destination_channel": row["dstchannel"],
            "source": row["src"],
            "destination": row["dst"],
            "start_time": start,
            "answer_time": _time_cell(row["answer"], "answer", zone),
            "end_time": _time_cell(row["end"], "end", zone),
            "duration_s": _int_cell(row["duration"], "duration"),
            "billable_s": _int_cell(row["billsec"], "billsec"),
            "disposition": disposition,
            "last_application": row["lastapp"],
            "last_data": row["lastdata"],
            "linkedid": row.get("linkedid", "").strip(),
        }
    )


def parse_master_csv(
    data: bytes, zone: tzinfo, since: datetime | None = None, *, name: str = "Master.csv"
) -> CdrBatch:
    """Every CDR of a `Master.csv` (bytes) that ended at or after `since`; a record that
    cannot be read is a problem `NAME:LINE: reason`."""
    batch = CdrBatch()
    for line_no, record in _records(data):
        if record is None:
            batch.problem(f"{name}:{line_no}: record longer than {MAX_RECORD_BYTES} bytes")
            continue
        if not record.strip():
            continue
        try:
            cdr = _cdr_from_row(_cells(record), zone)
        except (ValueError, csv.Error) as exc:
            batch.problem(f"{name}:{line_no}: {exc}")
            continue
        if since is not None and (cdr.end_time or cdr.start_time or since) < since:
            continue
        batch.cdrs.append(cdr)
    return batch


class CsvCdrSource:
    def __init__(self, path: Path, zone: tzinfo) -> None:
        self.path = path
        self.zone = zone
        self.description = f"csv:{path}"

    async def read(self, since: datetime | None) -> CdrBatch:
        try:
            data = await asyncio.to_thread(self.path.read_bytes)
        except OSError as exc:
            batch = CdrBatch()
            batch.problem(f"{self.path}: cannot read: {exc.strerror or exc}")
            return batch
        return await asyncio.to_thread(
            parse_master_csv, data, self.zone, since, name=self.path.name
        )


# --- cdr_pgsql -------------------------------------------------------------------------------

_PG_COLUMNS = (
    "calldate",
    "src",
    "dst",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "duration",
    "billsec",
    "disposition",
    "uniqueid",
    "linkedid",
)


def _pg_cdr(row: Any, zone: tzinfo) -> PbxCdr:
    start = row["calldate"]
    if not isinstance(start, datetime):
        raise ValueError("calldate is not a time")
    if start.tzinfo is None:
        start = start.replace(tzinfo=zone)
    duration = max(0, int(row["duration"] or 0))
    billsec = max(0, min(int(row["billsec"] or 0), duration))
    end = start + timedelta(seconds=duration)
    return PbxCdr.from_dict(
        {
            "uniqueid": str(row["uniqueid"] or "").strip(),
            "channel": row["channel"],
            "destination_channel": row["dstchannel"],
            "source": row["src"],
            "destination": row["dst"],
            "start_time": start,
            "answer_time": end - timedelta(seconds=billsec) if billsec else None,
            "end_time": end,
            "duration_s": duration,
            "billable_s": billsec,
            "disposition": str(row["disposition"] or "").upper(),
            "last_application": row["lastapp"],
            "last_data": row["lastdata"],
            "linkedid": str(row.get("linkedid") or "").strip(),
        }
    )


class PgsqlCdrSource:
    def __init__(self, url: str, table: str, zone: tzinfo) -> None:
        self.url = url
        self.table = table
        self.zone = zone
        self.description = f"cdr_pgsql table {table}"

    async def read(self, since: datetime | None) -> CdrBatch:
        batch = CdrBatch()
        schema, _, name = self.table.rpartition(".")
        try:
            conn = await asyncpg.connect(self.url, timeout=10)
        except DB_ERRORS as exc:
            batch.problem(f"{self.description}: cannot connect: {type(exc).__name__}")
            return batch
        try:
            present = {
                r["column_name"]
                for r in await conn.fetch(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_name = $1 AND ($2 = '' OR table_schema = $2)",
                    name,
                    schema,
                )
            }
            missing = [c for c in _PG_COLUMNS if c not in present and c != "linkedid"]
            if missing:
                batch.problem(f"{self.description}: missing columns {', '.join(missing)}")
                return batch
            columns = [c if c in present else f"'' AS {c}" for c in _PG_COLUMNS]
            quoted = ".".join(f'"{part}"' for part in self.table.split("."))
            rows = await conn.fetch(
                f"SELECT {', '.join(columns)} FROM {quoted}"  # name matched _TABLE
                " WHERE $1::timestamptz IS NULL OR calldate >= $1::timestamptz - interval '1 day'"
                " ORDER BY calldate",
                since,
            )
        except DB_ERRORS as exc:
            batch.problem(f"{self.description}: {type(exc).__name__}: {str(exc)[:200]}")
            return batch
        finally:
            await conn.close()
        for n, row in enumerate(rows, start=1):
            try:
                cdr = _pg_cdr(row, self.zone)
            except (ValueError, TypeError) as exc:
                batch.problem(f"{self.description} row {n}: {exc}")
                continue
            if not cdr.uniqueid:
                batch.problem(f"{self.description} row {n}: no uniqueid")
                continue
            if since is not None and (cdr.end_time or since) < since:
                continue
            batch.cdrs.append(cdr)
        return batch


def build_cdr_source(text: str, zone: tzinfo) -> CdrSource | None:
    """`[pbx] cdr_source` as a source; None when empty. `ConfigError` names the key."""
    text = text.strip()
    if not text:
        return None
    if text.startswith("csv:"):
        path = text[4:].strip()
        if not path:
            raise ConfigError("pbx.cdr_source", "csv: needs the path of Master.csv")
        return CsvCdrSource(Path(path), zone)
    parts = urlsplit(text)
    if parts.scheme in {"postgresql", "postgres"}:
        query = parse_qsl(parts.query, keep_blank_values=True)
        tables = [v for k, v in query if k == "table"]
        if len(tables) != 1 or not _TABLE.fullmatch(tables[0]):
            raise ConfigError(
                "pbx.cdr_source", "a PostgreSQL URL needs ?table=NAME (letters, digits, _)"
            )
        rest = urlencode([(k, v) for k, v in query if k != "table"])
        return PgsqlCdrSource(urlunsplit(parts._replace(query=rest)), tables[0], zone)
    raise ConfigError("pbx.cdr_source", "csv:PATH or postgresql://…?table=NAME")
