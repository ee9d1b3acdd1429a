"""`crm-bridge rules | agents | customers` end to end through `bridge.cli.main.main`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridge.cli.main import main
from bridge.crm.agents import authenticate
from bridge.db.pool import connect, create_pool
from tests.conftest import truncate_all


@pytest.fixture
def cli_db(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Empty tables, the CLI pointed at the test database, no stray config file."""

    async def clean() -> None:
        conn = await connect(database_url)
        try:
            await truncate_all(conn)
        finally:
            await conn.close()

    asyncio.run(clean())
    for name in ("CRM_BRIDGE_CONFIG", "CRM_BRIDGE_ROUTING_DEFAULT_QUEUE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CRM_BRIDGE_DATABASE_URL", database_url)
    monkeypatch.chdir(tmp_path)
    return database_url


def _fetch(url: str, sql: str) -> list[tuple[object, ...]]:
    async def go() -> list[tuple[object, ...]]:
        conn = await connect(url)
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(go())


def test_agents_add_prints_a_token_that_authenticates(
    cli_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["agents", "add", "1001", "--name", "Ann", "--role", "supervisor"]) == 0
    out = capsys.readouterr().out.strip()
    word, agent_id, token = out.split(" ")
    assert (word, agent_id) == ("agent", "1001")

    async def check() -> None:
        pool = await create_pool(cli_db)
        try:
            agent = await authenticate(pool, token)
        finally:
            await pool.close()
        assert agent is not None
        assert (agent.id, agent.role, agent.device) == ("1001", "supervisor", "1001")

    asyncio.run(check())
    stored = _fetch(cli_db, "SELECT token_hash FROM agents")[0][0]
    assert token not in str(stored)
    assert main(["agents", "list"]) == 0
    assert "1001  Ann  role=supervisor device=1001" in capsys.readouterr().out


def test_agents_add_bad_values_exit_2_with_one_line(
    cli_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["agents", "add", "bad id\r\n", "--name", "X"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "id" in err
    assert main(["agents", "add", "1001", "--name", "A"]) == 0
    capsys.readouterr()
    assert main(["agents", "add", "1002", "--name", "B", "--device", "1001"]) == 2
    assert "device" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["agents", "add", "1003", "--name", "C", "--role", "root"])
    assert exc.value.code == 2


def test_rules_add_list_test_remove(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    csv = Path("c.csv")
    csv.write_text(
        "id,name,phones,tags,owner,lifetime_value\n"
        "c1,Alice Chen,+15551230001,vip,,20000\n"
        "c2,张伟,+8613800138000,complaint-risk,,50\n",
        encoding="utf-8",
    )
    assert main(["customers", "import", str(csv)]) == 0
    capsys.readouterr()
    assert main(["rules", "add", "vip", "--queue", "senior", "--tags-any", "vip"]) == 0
    assert (
        main(["rules", "add", "china", "--queue", "cn", "--prefix", "+86", "--priority", "5"]) == 0
    )
    assert (
        main(
            [
                "rules",
                "add",
                "rich",
                "--queue",
                "gold",
                "--attr",
                "lifetime_value>=10000",
                "--position",
                "1",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "rules",
                "add",
                "night",
                "--queue",
                "night",
                "--when",
                "mon-fri 22:00-06:00",
                "--unknown-caller",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["rules", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in listing[:4]] == ["rich", "vip", "china", "night"]
    assert "--when 'mon-fri 22:00-06:00'" in listing[3]

    def decision(*argv: str) -> dict[str, str]:
        assert main(["rules", "test", *argv]) == 0
        out = capsys.readouterr().out
        return dict(line.split(": ", 1) for line in out.splitlines())

    d = decision("+15551230001")
    assert (d["queue"], d["rule"], d["priority"]) == ("gold", "rich", "0")
    assert d["customer"].startswith("c1 Alice Chen")
    d = decision("008613800138000")
    assert (d["queue"], d["rule"], d["priority"]) == ("cn", "china", "5")
    # Monday 23:30 UTC, unknown caller → night; Saturday 12:00 → default.
    assert decision("anonymous", "--at", "2026-11-23T23:30:00")["rule"] == "night"
    d = decision("+15559990000", "--at", "2026-11-28T12:00:00+00:00")
    assert (d["queue"], d["rule"], d["customer"]) == ("support", "default", "unknown")

    assert main(["rules", "remove", "rich"]) == 0
    assert capsys.readouterr().out == "removed rule rich\n"
    assert decision("+15551230001")["rule"] == "vip"
    assert main(["rules", "remove", "rich"]) == 2
    assert "rich" in capsys.readouterr().err
    positions = _fetch(cli_db, "SELECT name, position FROM routing_rules ORDER BY position")
    assert positions == [("vip", 1), ("china", 2), ("night", 3)]


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["rules", "add", "x", "--queue", "q", "--when", "mon-fri 25:00-26:00"], "when"),
        (["rules", "add", "x", "--queue", "q", "--when", "someday"], "when"),
        (["rules", "add", "x", "--queue", "q", "--attr", "ltv>>1"], "attr"),
        (["rules", "add", "x", "--queue", "q", "--prefix", "86"], "prefix"),
        (["rules", "add", "x", "--queue", "q;DROP TABLE x"], "queue"),
        (["rules", "add", "x'--", "--queue", "q"], "name"),
        (["rules", "add", "x", "--queue", "q", "--tags-any", "a b"], "tags_any"),
        (["rules", "add", "x", "--queue", "q", "--did", "100", "--position", "0"], "position"),
        (["rules", "test", "+15551230001", "--at", "yesterday"], "--at"),
    ],
)
def test_rules_bad_input_exit_2_naming_the_field(
    cli_db: str, capsys: pytest.CaptureFixture[str], argv: list[str], field: str
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("crm-bridge: ") and field in err and err.count("\n") == 1
    assert _fetch(cli_db, "SELECT count(*) FROM routing_rules") == [(0,)]


def test_rules_add_duplicate_name_exit_2(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "add", "vip", "--queue", "senior", "--tags-any", "vip"]) == 0
    assert main(["rules", "add", "vip", "--queue", "other", "--did", "100"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_customers_import_twice_changes_nothing_and_reports_problems(
    cli_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["agents", "add", "1001", "--name", "Ann"]) == 0
    path = Path("customers.csv")
    path.write_bytes(
        b"name,phones,tags,owner,region,ltv\n"
        b"Alice Chen,+1 555 123 0001;(555) 123-0009,vip,1001,west,20000\n"
        b"Bob Li,+15551230002,,,east,00123\n"
        b"Thief,+15551230001,,,,\n"
        b",+15551230003,,,,\n"
        b"Broken \xff\xfe,+15551230004,,,,\n"
        b"Ghost,+15551230005,,9999,,\n"
    )
    capsys.readouterr()
    assert main(["customers", "import", str(path)]) == 2  # ltv mixes numbers and text
    assert "--types ltv=" in capsys.readouterr().err
    command = ["customers", "import", str(path), "--types", "ltv=text"]
    assert main(command) == 1  # some rows were rejected
    captured = capsys.readouterr()
    assert "line 4: rejected tel-15551230001: same customer (phone tel-15551230001) as line 2" in (
        captured.err
    )
    assert "line 5: rejected: no name" in captured.err
    assert "line 6: rejected: not valid UTF-8" in captured.err
    assert "line 7: rejected tel-15551230005: owner '9999' is not an agent" in captured.err
    assert "line 2: created tel-15551230001" in captured.out
    assert "6 rows read: 2 created, 0 updated, 0 unchanged, 4 rejected" in captured.out
    snapshot = _fetch(
        cli_db,
        "SELECT c.id, c.name, c.attributes::text, c.updated_at,"
        " (SELECT array_agg(e164 ORDER BY e164) FROM customer_phones p WHERE p.customer_id = c.id),"
        " (SELECT array_agg(tag) FROM customer_tags t WHERE t.customer_id = c.id),"
        " (SELECT agent_id FROM customer_owners o WHERE o.customer_id = c.id)"
        " FROM customers c ORDER BY c.id",
    )
    assert [row[:3] for row in snapshot] == [
        ("tel-15551230001", "Alice Chen", '{"ltv": "20000", "region": "west"}'),
        ("tel-15551230002", "Bob Li", '{"ltv": "00123", "region": "east"}'),
    ]
    alice = snapshot[0]
    assert alice[4] == ["+15551230001", "+15551230009"] and alice[5] == ["vip"]
    assert alice[6] == "1001"

    assert main(command) == 1
    captured = capsys.readouterr()
    assert "0 created, 0 updated, 2 unchanged, 4 rejected" in captured.out
    again = _fetch(
        cli_db,
        "SELECT c.id, c.name, c.attributes::text, c.updated_at,"
        " (SELECT array_agg(e164 ORDER BY e164) FROM customer_phones p WHERE p.customer_id = c.id),"
        " (SELECT array_agg(tag) FROM customer_tags t WHERE t.customer_id = c.id),"
        " (SELECT agent_id FROM customer_owners o WHERE o.customer_id = c.id)"
        " FROM customers c ORDER BY c.id",
    )
    assert again == snapshot


def test_customers_import_clean_file_exits_0_and_dry_run_writes_nothing(
    cli_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("ok.csv").write_text("name,phones\nAlice,+15551230001\n", encoding="utf-8")
    assert main(["customers", "import", "ok.csv", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "line 2: created tel-15551230001" in out and out.startswith("line 2")
    assert "dry run, nothing written: 1 rows read: 1 created" in out
    assert _fetch(cli_db, "SELECT count(*) FROM customers") == [(0,)]
    assert main(["customers", "import", "ok.csv"]) == 0
    assert _fetch(cli_db, "SELECT id FROM customers") == [("tel-15551230001",)]
    assert main(["customers", "import", "ok.csv", "--types", "nosuch=number"]) == 2
    assert "nosuch" in capsys.readouterr().err


def test_customers_import_help_documents_the_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["customers", "import", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for words in ("RFC 4180", "separated by ';'", "--empty", "keep", "clear", "--types",
                  "--dry-run", "Exit 0", "1: some row", "update semantics"):  # fmt: skip
        assert words in text


def test_customers_import_unusable_file_exit_2(
    cli_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["customers", "import", "missing.csv"]) == 2
    assert "missing.csv" in capsys.readouterr().err
    Path("nohead.csv").write_text("who,where\nA,B\n", encoding="utf-8")
    assert main(["customers", "import", "nohead.csv"]) == 2
    assert "name" in capsys.readouterr().err


def test_customers_dedup_lists_groups_and_merge_is_explicit(
    cli_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("c.csv").write_text(
        "id,name,phones,email,mobile\n"
        "c1,Alice Chen,+15551230001,alice@example.com,\n"
        "c2,Chen Alice,+15551230002,ALICE@example.com,\n"
        "c3,Bob,+15551230003,,555-123-0001\n"
        "c4,Carl,+15551230004,carl@example.com,\n",
        encoding="utf-8",
    )
    assert main(["customers", "import", "c.csv"]) == 0
    capsys.readouterr()
    assert main(["customers", "dedup"]) == 0
    out = capsys.readouterr().out
    assert "group 1: c1 c2 c3" in out
    assert "because same e-mail alice@example.com" in out
    assert "because same phone +15551230001 (c1: phone, c3: other format)" in out
    assert "merge with: crm-bridge customers merge c1 c2 c3" in out
    assert "1 groups of likely duplicates" in out
    assert _fetch(cli_db, "SELECT count(*) FROM customers") == [(4,)]  # listing changes nothing
    # c1 and c2 disagree on the e-mail's spelling: refused, exit 2, nothing changes
    assert main(["customers", "merge", "c1", "c2", "c3"]) == 2
    assert "attribute 'email' differs" in capsys.readouterr().err
    assert main(["customers", "merge", "c1", "c2", "c3", "--on-conflict", "survivor",
                 "--reason", "group 1"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "merge 1: c2 c3 into c1" in out and "customer_phones 2" in out
    assert _fetch(cli_db, "SELECT id FROM customers ORDER BY id") == [("c1",), ("c4",)]
    assert main(["customers", "merges"]) == 0
    assert "c2 c3 into c1 (CRM not told yet) - group 1" in capsys.readouterr().out
    assert main(["customers", "dedup"]) == 0
    assert "0 groups" in capsys.readouterr().out


@pytest.mark.parametrize(
    "conditions",
    [[], ["--tags-any", ""], ["--tags-any", " , "], ["--when", "mon-sun"], ["--prefix", ""]],
)
def test_rules_add_refuses_a_rule_that_matches_every_call_without_catch_all(
    cli_db: str, capsys: pytest.CaptureFixture[str], conditions: list[str]
) -> None:
    assert main(["rules", "add", "vip", "--queue", "senior", "--tags-any", "vip"]) == 0
    capsys.readouterr()
    assert main(["rules", "add", "all", "--queue", "support", *conditions]) == 2
    err = capsys.readouterr().err
    assert "shadow every rule below it" in err and "--catch-all" in err and err.count("\n") == 1
    assert _fetch(cli_db, "SELECT name FROM routing_rules") == [("vip",)]
    assert main(["rules", "add", "all", "--queue", "support", *conditions, "--catch-all"]) == 0
    assert _fetch(cli_db, "SELECT name FROM routing_rules ORDER BY position") == [
        ("vip",),
        ("all",),
    ]


def test_rules_add_accepts_several_windows_and_names_a_wrong_one(
    cli_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    when = "mon-fri 09:00-18:00, sat 10:00-12:00"
    assert main(["rules", "add", "open", "--queue", "day", "--when", when]) == 0
    assert "--when 'mon-fri 09:00-18:00, sat 10:00-12:00'" in capsys.readouterr().out
    assert main(["rules", "test", "+15551230001", "--at", "2026-11-07T11:00"]) == 0  # a Saturday
    out = capsys.readouterr().out
    assert "rule: open" in out
    assert "time: 2026-11-07T11:00:00+00:00 (UTC, [routing] timezone)" in out
    assert main(["rules", "test", "+15551230001", "--at", "2026-11-07T13:00"]) == 0
    assert "rule: default" in capsys.readouterr().out
    bad = "mon-fri 09:00-18:00, sat 25:00-12:00"
    assert main(["rules", "add", "bad", "--queue", "day", "--when", bad]) == 2
    err = capsys.readouterr().err
    assert "window 2 ('sat 25:00-12:00'): 25:00 is not a time of day" in err


def test_rules_test_uses_the_configured_time_zone_and_says_so(
    cli_db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_BRIDGE_ROUTING_TIMEZONE", "Asia/Shanghai")
    assert main(["rules", "add", "day", "--queue", "day", "--when", "09:00-18:00"]) == 0
    capsys.readouterr()
    # 02:00 UTC is 10:00 in Shanghai: inside the window there
    assert main(["rules", "test", "+15551230001", "--at", "2026-11-02T02:00Z"]) == 0
    out = capsys.readouterr().out
    assert "time: 2026-11-02T10:00:00+08:00 (Asia/Shanghai, [routing] timezone)" in out
    assert "rule: day" in out


def test_rules_test_replay_lists_calls_that_would_now_route_differently(
    cli_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("c.csv").write_text(
        "id,name,phones,tags\nc1,Alice,+15551230001,vip\nc2,Bob,+15551230002,\n",
        encoding="utf-8",
    )
    assert main(["customers", "import", "c.csv"]) == 0
    _fetch(
        cli_db,
        "INSERT INTO call_records (call_id, caller, did, queue, rule, started_at, ended_at,"
        " direction) VALUES"
        " ('1.1', '+15551230001', '', 'support', 'default', '2026-11-02T10:00Z',"
        "  '2026-11-02T10:05Z', 'inbound'),"
        " ('1.2', '+15551230002', '', 'support', 'default', '2026-11-02T11:00Z',"
        "  '2026-11-02T11:05Z', 'inbound'),"
        " ('1.3', '+15551230001', '', 'sales', 'old', '2026-11-02T12:00Z',"
        "  '2026-11-02T12:05Z', 'outbound')"
        " RETURNING call_id",
    )
    assert main(["rules", "add", "vip", "--queue", "senior", "--tags-any", "vip"]) == 0
    capsys.readouterr()
    assert main(["rules", "test", "--replay", "10"]) == 0
    out = capsys.readouterr().out
    assert "time zone: UTC" in out
    assert (
        "1.1 2026-11-02T10:00:00+00:00 +15551230001: was support (rule default),"
        " now senior (rule vip)" in out
    )
    assert "1.2 " not in out and "1.3 " not in out  # unchanged; outbound is not routed
    assert "2 calls replayed, 1 would now route differently" in out
    assert main(["rules", "test", "--replay", "0"]) == 2
    assert main(["rules", "test", "+15551230001", "--replay", "5"]) == 2
    assert main(["rules", "test"]) == 2
