"""Customer CSV import: every row ends created, updated, unchanged or rejected (whole), with
its line number; nothing is lost or twisted silently (issue 17)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bridge.crm.importer import (
    ImportOptions,
    ImportReport,
    attribute_value,
    import_file,
    import_rows,
    parse_types,
)
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


def outcomes(report: ImportReport) -> list[tuple[int, str, str | None]]:
    return [(r.line, r.outcome, r.customer_id) for r in report.rows]


def reasons(report: ImportReport) -> list[tuple[int, str]]:
    return [(r.line, r.detail) for r in report.rejected]


async def test_phone_of_another_customer_rejects_the_whole_row(pool: asyncpg.Pool[Any]) -> None:
    first = await import_rows(pool, lines(b"id,name,phones\nc1,Alice,+15551230001\n"), "US")
    assert first.ok and outcomes(first) == [(2, "created", "c1")]
    data = b"id,name,phones,tags\nc2,Mallory,+15551230001;+15551230005,x\n"
    report = await import_rows(pool, lines(data), "US")
    assert outcomes(report) == [(2, "rejected", "c2")]
    assert "phone +15551230001 already belongs to customer c1" in report.rows[0].detail
    # before issue 17, c2 was created anyway with the other phone: now nothing of it exists
    assert [r[0] for r in await dump(pool)] == ["c1"]
    before = await dump(pool)
    again = await import_rows(pool, lines(data), "US")
    assert outcomes(again) == [(2, "rejected", "c2")]
    assert await dump(pool) == before


async def test_row_without_id_whose_phone_is_taken_is_rejected(pool: asyncpg.Pool[Any]) -> None:
    await import_rows(pool, lines(b"id,name,phones\nc1,Alice,+15551230001\n"), "US")
    report = await import_rows(pool, lines(b"name,phones\nEve,(555) 123-0001\n"), "US")
    assert outcomes(report) == [(2, "rejected", "tel-15551230001")]
    assert "already belongs to customer c1" in report.rows[0].detail
    assert [r[0] for r in await dump(pool)] == ["c1"]


async def test_row_with_no_phone_is_rejected_not_created_phoneless(
    pool: asyncpg.Pool[Any],
) -> None:
    report = await import_rows(pool, lines(b"id,name,phones\nc1,Alice,\n"), "US")
    assert reasons(report) == [(2, "no phone: a new customer needs at least one")]
    assert await dump(pool) == []


async def test_invalid_phone_rejects_the_row_instead_of_creating_it_without(
    pool: asyncpg.Pool[Any],
) -> None:
    report = await import_rows(
        pool, lines(b"id,name,phones\nc1,Alice,+15551230001;notaphone\n"), "US"
    )
    assert reasons(report) == [(2, "phone 'notaphone' is not a valid number")]
    assert await dump(pool) == []


async def test_extra_unnamed_cells_reject_the_row(pool: asyncpg.Pool[Any]) -> None:
    report = await import_rows(
        pool,
        lines(b"name,phones,city\nLi, Bob,+15551230002,Paris\nAnn,+15551230003,Rome,\n"),
        "US",
    )
    # line 2: an unquoted comma shifted every cell; line 3: a trailing empty cell is harmless
    assert outcomes(report) == [(2, "rejected", None), (3, "created", "tel-15551230003")]
    assert "4 cells but the header names 3 columns" in report.rows[0].detail
    assert "'Paris' has no column" in report.rows[0].detail


async def test_column_mixing_numbers_and_text_needs_a_declared_type(
    pool: asyncpg.Pool[Any],
) -> None:
    data = (
        b"name,phones,lifetime_value\n"
        b"A,+15551230001,20000\n"
        b"B,+15551230002,10 000\n"
        b"C,+15551230003,500\n"
    )
    with pytest.raises(UsageError) as exc:
        await import_rows(pool, lines(data), "US")
    assert "--types lifetime_value=number" in str(exc.value) and "line 3" in str(exc.value)
    assert await dump(pool) == []  # nothing written
    options = ImportOptions(types=parse_types("lifetime_value=number"))
    report = await import_rows(pool, lines(data), "US", options)
    assert outcomes(report) == [
        (2, "created", "tel-15551230001"),
        (3, "rejected", None),
        (4, "created", "tel-15551230003"),
    ]
    assert "'10 000' is not a number" in report.rows[1].detail
    stored = await pool.fetch(
        "SELECT id FROM customers WHERE (attributes->>'lifetime_value')::numeric >= 10000"
    )
    assert [r["id"] for r in stored] == ["tel-15551230001"]
    text = ImportOptions(types=parse_types("lifetime_value=text"))
    report = await import_rows(pool, lines(data), "US", text)
    assert [r.outcome for r in report.rows] == ["updated", "created", "updated"]
    assert (
        await pool.fetchval(
            "SELECT attributes->>'lifetime_value' FROM customers WHERE id = 'tel-15551230002'"
        )
        == "10 000"
    )


@pytest.mark.parametrize(
    "text",
    ["ltv=money", "ltv", "=number", "ltv=number,x"],
)
def test_bad_types_declaration_is_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        parse_types(text)


async def test_types_naming_an_unknown_column_is_usage_error(pool: asyncpg.Pool[Any]) -> None:
    with pytest.raises(UsageError):
        await import_rows(
            pool,
            lines(b"name,phones\nA,+15551230001\n"),
            "US",
            ImportOptions(types={"ltv": "number"}),
        )


async def test_empty_cells_keep_stored_values_unless_clear_is_asked(
    pool: asyncpg.Pool[Any],
) -> None:
    await pool.execute(
        "INSERT INTO agents (id, name, device, token_hash) VALUES ('1001','A','1001','h1')"
    )
    full = b"id,name,phones,tags,owner,tier\nc1,Alice,+15551230001,vip;b2b,1001,gold\n"
    await import_rows(pool, lines(full), "US")
    sparse = b"id,name,phones,tags,owner,tier\nc1,Alice,,,,\n"
    report = await import_rows(pool, lines(sparse), "US")
    assert outcomes(report) == [(2, "unchanged", "c1")]  # was: tags and owner wiped
    (row,) = await dump(pool)
    assert row[4] == ["+15551230001"] and row[5] == ["b2b", "vip"] and row[6] == "1001"
    assert row[2] == '{"tier": "gold"}'
    report = await import_rows(pool, lines(sparse), "US", ImportOptions(empty="clear"))
    assert [(r.outcome, r.detail) for r in report.rows] == [
        ("updated", "changed phones, tags, attributes, owner")
    ]
    (row,) = await dump(pool)
    assert row[2] == "{}" and row[4] is None and row[5] is None and row[6] is None


async def test_absent_columns_are_left_alone_even_with_clear(pool: asyncpg.Pool[Any]) -> None:
    await import_rows(pool, lines(b"id,name,phones,tags\nc1,Alice,+15551230001,vip\n"), "US")
    report = await import_rows(
        pool, lines(b"id,name,phones\nc1,Alice,+15551230001\n"), "US", ImportOptions(empty="clear")
    )
    assert outcomes(report) == [(2, "unchanged", "c1")]


async def test_oversized_cell_rejects_its_row_and_the_rest_of_the_file_is_imported(
    pool: asyncpg.Pool[Any],
) -> None:
    rows = [b"name,phones,note"]
    rows.append(b'Huge,+15551230000,"' + b"x" * (129 * 1024) + b'"')
    rows += [b"P%d,+1555123%04d,n" % (i, i + 1) for i in range(10)]
    report = await import_rows(pool, lines(b"\n".join(rows) + b"\n"), "US")
    assert report.rows[0].line == 2 and report.rows[0].outcome == "rejected"
    assert [r.outcome for r in report.rows[1:]] == ["created"] * 10
    assert [r.line for r in report.rows[1:]] == list(range(3, 13))
    assert report.summary() == "11 rows read: 10 created, 0 updated, 0 unchanged, 1 rejected"
    assert len(await dump(pool)) == 10


async def test_dry_run_reports_the_same_outcomes_and_writes_nothing(
    pool: asyncpg.Pool[Any],
) -> None:
    await import_rows(pool, lines(b"id,name,phones\nc1,Alice,+15551230001\n"), "US")
    before = await dump(pool)
    audit_before = await pool.fetchval("SELECT count(*) FROM audit_log")
    data = (
        b"id,name,phones\n"
        b"c1,Alice B,+15551230001\n"
        b"c2,Bob,+15551230002\n"
        b"c3,Carl,+15551230002\n"  # the phone c2 takes on line 3: seen even in a dry run
        b"c4,Dan,+15551230004\n"
    )
    dry = await import_rows(pool, lines(data), "US", ImportOptions(dry_run=True))
    assert outcomes(dry) == [
        (2, "updated", "c1"),
        (3, "created", "c2"),
        (4, "rejected", "c3"),
        (5, "created", "c4"),
    ]
    assert dry.summary().startswith("dry run, nothing written: 4 rows read")
    assert await dump(pool) == before
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == audit_before
    real = await import_rows(pool, lines(data), "US")
    assert outcomes(real) == outcomes(dry)


async def test_every_change_is_audited_and_a_second_import_changes_nothing(
    pool: asyncpg.Pool[Any],
) -> None:
    data = b"id,name,phones,tags\nc1,Alice,+15551230001,vip\nc2,Bob,+15551230002,\n"
    await import_rows(pool, lines(data), "US")
    audited = await pool.fetch(
        "SELECT actor, action, target_id, before, after FROM audit_log ORDER BY id"
    )
    assert [(r["actor"], r["action"], r["target_id"], r["before"]) for r in audited] == [
        ("cli", "customer.import", "c1", None),
        ("cli", "customer.import", "c2", None),
    ]
    assert audited[0]["after"]["tags"] == ["vip"]
    before = await dump(pool)
    again = await import_rows(pool, lines(data), "US")
    assert [r.outcome for r in again.rows] == ["unchanged", "unchanged"]
    assert await dump(pool) == before
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 2


async def test_file_is_the_truth_for_non_empty_phones_tags_and_owner(
    pool: asyncpg.Pool[Any],
) -> None:
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
    assert [(r.outcome, r.detail) for r in report.rows] == [
        ("updated", "changed name, phones, tags, owner")
    ]
    (row,) = await dump(pool)
    assert row[1] == "Alice C" and row[4] == ["+15551230002"] and row[5] == ["new", "vip"]
    assert row[6] == "1002"
    assert row[2] == '{"kept": 1, "tier": "gold"}'  # attributes merge; empty cells keep keys


async def test_hostile_rows_are_rejected_with_line_numbers(pool: asyncpg.Pool[Any]) -> None:
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
    assert reasons(report) == [
        (3, "control characters (CR, LF, NUL, ...) in a cell"),
        (5, "a cell is longer than 2000 characters"),
        (6, "control characters (CR, LF, NUL, ...) in a cell"),
        (7, "tag '<script>' is not 1-64 of A-Z a-z 0-9 _ . : -"),
        (8, "phone 'notaphone' is not a valid number"),
        (9, "no id and no phone to derive one from"),
        (12, "owner 'nobody' is not an agent"),
        (13, "not valid UTF-8"),
    ]
    assert [r.line for r in report.rows] == [2, 3, 5, 6, 7, 8, 9, 11, 12, 13]
    rows = {r[0]: r for r in await dump(pool)}
    assert set(rows) == {"tel-15551230002", "tel-15551230009"}
    bob = rows["tel-15551230002"]
    assert bob[1] == "Li, Bob" and bob[4] == ["+15551230002", "+15551230003"]
    assert bob[2] == '{"Note": "a, b"}'
    assert rows["tel-15551230009"][1] == "Robert'); DROP TABLE customers;--"
    assert rows["tel-15551230009"][2] == '{"Note": "<b>x</b>"}'
    assert report.summary() == "10 rows read: 2 created, 0 updated, 0 unchanged, 8 rejected"


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
    assert report.ok and report.count("created") == 1
    assert await pool.fetchval("SELECT e164 FROM customer_phones") == "+15551230001"


async def test_duplicate_rows_in_one_file(pool: asyncpg.Pool[Any]) -> None:
    report = await import_rows(
        pool,
        lines(b"id,name,phones\nc1,A,+15551230001\nc1,B,+15551230002\nc2,C,+15551230001\n"),
        "US",
    )
    assert outcomes(report) == [(2, "created", "c1"), (3, "rejected", "c1"), (4, "rejected", "c2")]
    assert report.rows[1].detail == "same customer (id c1) as line 2"
    assert [(r[0], r[1], r[4]) for r in await dump(pool)] == [("c1", "A", ["+15551230001"])]
