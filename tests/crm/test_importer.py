"""Customer CSV import: normalised phones, duplicates reported, idempotent, hostile rows."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bridge.crm.importer import attribute_value, import_file, import_rows
from bridge.errors import UsageError, ValidationError


def lines(data: bytes) -> io.StringIO:
    return io.StringIO(data.decode("utf-8", errors="surrogateescape"), newline="")


async def dump(pool: asyncpg.Pool[Any]) -> list[tuple[Any, ...]]:
    rows = await pool.fetch(
        "SELECT c.id, c.name, c.attributes::text AS attributes, c.updated_at,"
        " (SELECT array_agg(e164 ORDER BY e164) FROM customer_phones p"
        "   WHERE p.customer_id = c.id) AS phones,"
        " (SELECT array_agg(tag ORDER BY tag) FROM customer_tags t"
        "   WHERE t.customer_id = c.id) AS tags,"
        " (SELECT agent_id FROM customer_owners o WHERE o.customer_id = c.id) AS owner"
        " FROM customers c ORDER BY c.id"
    )
    return [tuple(r) for r in rows]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10000", 10000),
        ("-5", -5),
        ("0", 0),
        ("2.5", 2.5),
        ("0.25", 0.25),
        ("1.5e3", 1500.0),
        ("00123", "00123"),
        ("1e999", "1e999"),
        ("1.0e999", "1.0e999"),
        ("NaN", "NaN"),
        ("inf", "inf"),
        ("12 000", "12 000"),
        ("1_000", "1_000"),
        ("gold", "gold"),
        ("9" * 30, "9" * 30),  # not a sane integer: kept as text
    ],
)
def test_attribute_values(text: str, value: object) -> None:
    result = attribute_value(text)
    assert result == value and type(result) is type(value)


async def test_phone_of_another_customer_is_reported_not_merged(pool: asyncpg.Pool[Any]) -> None:
    first = await import_rows(pool, lines(b"id,name,phones\nc1,Alice,+15551230001\n"), "US")
    assert first.ok and first.created == 1
    report = await import_rows(
        pool,
        lines(b"id,name,phones,tags\nc2,Mallory,+15551230001;+15551230005,x\n"),
        "US",
    )
    assert report.problems == [(2, "phone +15551230001 already belongs to customer c1; skipped")]
    assert not report.ok and report.created == 1
    owners = await pool.fetch("SELECT e164, customer_id FROM customer_phones ORDER BY e164")
    assert [tuple(r) for r in owners] == [("+15551230001", "c1"), ("+15551230005", "c2")]
    # the same file again: still reported, still nothing moves, nothing else changes
    before = await dump(pool)
    again = await import_rows(
        pool,
        lines(b"id,name,phones,tags\nc2,Mallory,+15551230001;+15551230005,x\n"),
        "US",
    )
    assert again.unchanged == 1 and len(again.problems) == 1
    assert await dump(pool) == before


async def test_row_without_id_whose_phone_is_taken_is_skipped(pool: asyncpg.Pool[Any]) -> None:
    await import_rows(pool, lines(b"id,name,phones\nc1,Alice,+15551230001\n"), "US")
    report = await import_rows(pool, lines(b"name,phones\nEve,(555) 123-0001\n"), "US")
    assert report.problems == [
        (
            2,
            "phone +15551230001 already belongs to customer c1 and the row has no id; row skipped",
        )
    ]
    assert report.skipped == 1
    assert [r[0] for r in await dump(pool)] == ["c1"]


async def test_file_is_the_truth_for_phones_tags_and_owner(pool: asyncpg.Pool[Any]) -> None:
    await pool.execute(
        "INSERT INTO agents (id, name, device, token_hash) VALUES ('1001','A','1001','h1')"
    )
    await pool.execute(
        "INSERT INTO agents (id, name, device, token_hash) VALUES ('1002','B','1002','h2')"
    )
    await import_rows(
        pool,
        lines(
            b"id,name,phones,tags,owner,tier\nc1,Alice,+15551230001;+15551230002,vip;b2b,1001,gold\n"
        ),
        "US",
    )
    await pool.execute("UPDATE customers SET attributes = attributes || '{\"kept\": 1}'")
    report = await import_rows(
        pool,
        lines(b"id,name,phones,tags,owner,tier\nc1,Alice C,+15551230002,vip;new,1002,\n"),
        "US",
    )
    assert report.ok and report.updated == 1
    (row,) = await dump(pool)
    assert row[1] == "Alice C" and row[4] == ["+15551230002"] and row[5] == ["new", "vip"]
    assert row[6] == "1002"
    assert row[2] == '{"kept": 1, "tier": "gold"}'  # attributes merge; empty cells keep keys
    report = await import_rows(
        pool, lines(b"id,name,phones,owner\nc1,Alice C,+15551230002,\n"), "US"
    )
    (row,) = await dump(pool)
    assert row[5] is None and row[6] is None  # no tags, owner cleared


async def test_hostile_rows_are_reported_with_line_numbers(pool: asyncpg.Pool[Any]) -> None:
    data = (
        b"\xef\xbb\xbfName,Phones,Tags,Owner,Note\r\n"  # BOM, capitals, CRLF
        b'"Li, Bob","+15551230002; 555-123-0003",vip,,"a, b"\r\n'
        b'"Multi\nLine",+15551230004,,,\r\n'  # lines 3-4: a CR/LF inside a field
        b"Huge," + b"+1555123" * 400 + b",,,\r\n"  # line 5
        b"Nul\x00,+15551230006,,,\r\n"  # line 6
        b"Bad tags,+15551230007,<script>;ok,,\r\n"  # line 7
        b"Bad phone,+15551230008;notaphone,,,\r\n"  # line 8
        b"Nophone,,,,\r\n"  # line 9
        b"\r\n"  # blank line 10 is ignored
        b"Robert'); DROP TABLE customers;--,+15551230009,,,<b>x</b>\r\n"  # line 11
        b"Ghost,+15551230010,,nobody,\r\n"  # line 12
        b"Bytes \xc3\x28,+15551230011,,,\r\n"  # line 13: invalid UTF-8
    )
    report = await import_rows(pool, lines(data), "US")
    assert report.problems == [
        (3, "control characters (CR, LF, NUL, ...) in a field; row skipped"),
        (5, "a field is longer than 2000 characters; row skipped"),
        (6, "control characters (CR, LF, NUL, ...) in a field; row skipped"),
        (7, "tag '<script>' is not 1-64 of A-Z a-z 0-9 _ . : -; skipped"),
        (8, "phone 'notaphone' is not a valid number; skipped"),
        (9, "no id and no valid phone to derive one from; row skipped"),
        (12, "owner 'nobody' is not an agent; row skipped"),
        (13, "not valid UTF-8; row skipped"),
    ]
    rows = {r[0]: r for r in await dump(pool)}
    assert set(rows) == {
        "tel-15551230002",
        "tel-15551230007",
        "tel-15551230008",
        "tel-15551230009",
    }
    bob = rows["tel-15551230002"]
    assert bob[1] == "Li, Bob" and bob[4] == ["+15551230002", "+15551230003"]
    assert bob[2] == '{"Note": "a, b"}'
    assert rows["tel-15551230009"][1] == "Robert'); DROP TABLE customers;--"
    assert rows["tel-15551230009"][2] == '{"Note": "<b>x</b>"}'
    assert rows["tel-15551230007"][5] == ["ok"]
    assert report.created == 4 and report.skipped == 6


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"who,where\nA,B\n",
        b"name,phones,name\nA,+15551230001,B\n",
        b"name,phones,\xff\n",
        b"name,phones," + b",".join(b"c%d" % i for i in range(300)) + b"\n",
        b"name,phones,bad\x01col\n",
    ],
)
async def test_unusable_header_is_a_validation_error(pool: asyncpg.Pool[Any], data: bytes) -> None:
    with pytest.raises(ValidationError) as exc:
        await import_rows(pool, lines(data), "US")
    assert exc.value.field == "header"


async def test_import_file_errors(pool: asyncpg.Pool[Any], tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        await import_file(pool, tmp_path / "missing.csv", "US")
    with pytest.raises(UsageError):
        await import_file(pool, tmp_path, "US")  # a directory
    path = tmp_path / "ok.csv"
    path.write_bytes(b"name,phones\nAlice,5551230001\n")
    report = await import_file(pool, path, "US")
    assert report.ok and report.created == 1
    assert await pool.fetchval("SELECT e164 FROM customer_phones") == "+15551230001"


async def test_duplicate_rows_in_one_file(pool: asyncpg.Pool[Any]) -> None:
    report = await import_rows(
        pool,
        lines(b"id,name,phones\nc1,A,+15551230001\nc1,B,+15551230002\nc2,C,+15551230001\n"),
        "US",
    )
    assert report.problems == [
        (3, "same customer (id c1) as line 2; row skipped"),
        (4, "phone +15551230001 already belongs to customer c1; skipped"),
    ]
    assert [(r[0], r[1], r[4]) for r in await dump(pool)] == [
        ("c1", "A", ["+15551230001"]),
        ("c2", "C", None),
    ]
