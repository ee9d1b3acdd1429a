"""`GET /api/customers?q=`, `GET /api/calls` (filters, paging) and dispositions in
`GET /api/audit` (issue 17: `q` was ignored, `/api/calls` was 404, the audit stayed empty)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.config import build_config
from bridge.crm.agents import Agent, create_agent
from bridge.pops.disposition import save_disposition
from bridge.records.participants import record_participant
from tests.admin.api import Api, mount_admin_api

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def tokens(pool: asyncpg.Pool[Any]) -> dict[str, str]:
    return {
        "admin": await create_agent(pool, "boss", "The Admin", "admin", "9000"),
        "agent": await create_agent(pool, "1001", "Agent 1001", "agent", "1001"),
    }


@pytest.fixture
async def api(pool: asyncpg.Pool[Any], tokens: dict[str, str]) -> AsyncIterator[Api]:
    app = web.Application()
    mount_admin_api(app, pool, build_config({}, {}, runtime=False))
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    try:
        yield Api(client, tokens["admin"])
    finally:
        await client.close()


async def customers_fixture(pool: asyncpg.Pool[Any]) -> None:
    await pool.execute(
        "INSERT INTO customers (id, name, attributes) VALUES"
        " ('c1', 'Alice Chen', '{\"email\": \"alice@example.com\"}'),"
        " ('c2', 'Bob 100% Li', '{}'),"
        " ('c3', 'Carl_Ng', '{\"account\": 42}'),"
        " ('alpha-9', 'Zed', '{}')"
    )
    await pool.execute(
        "INSERT INTO customer_phones (e164, customer_id) VALUES"
        " ('+15551230001', 'c1'), ('+15551230002', 'c2')"
    )


async def ids(api: Api, **params: str) -> list[str]:
    status, body = await api.call("GET", "/api/customers?" + urlencode(params))
    assert status == 200, body
    return [c["id"] for c in body["customers"]]


async def test_customer_search_uses_q(api: Api, pool: asyncpg.Pool[Any]) -> None:
    await customers_fixture(pool)
    assert await ids(api, q="chen") == ["c1"]  # name, any case
    assert await ids(api, q="ALICE@example.com") == ["c1"]  # an attribute equals it
    assert await ids(api, q="(555) 123-0002") == ["c2"]  # a phone in any format
    assert await ids(api, q="ALPHA") == ["alpha-9"]  # id prefix
    assert await ids(api, q="42") == ["c3"]
    assert await ids(api, q="100%") == ["c2"]  # % and _ are literal, not wildcards
    assert await ids(api, q="%") == ["c2"]
    assert await ids(api, q="_") == ["c3"]
    assert await ids(api, q="'; DROP TABLE customers;--") == []
    assert await ids(api, q="c", limit="1") == ["c1"]  # "Alice Chen", "Carl_Ng", ids c1..c3
    _, body = await api.call("GET", "/api/customers?q=c&limit=2")
    assert [c["id"] for c in body["customers"]] == ["c1", "c2"] and body["next"] == "c2"
    assert await ids(api, q="c", after="c2") == ["c3"]
    assert len(await ids(api)) == 4  # no q: every customer, as before


@pytest.mark.parametrize(
    "query",
    ["q=", "q=%20", "q=a%0Db", "q=a%00b", "q=" + "x" * 201, "qq=chen", "q=a&q=b", "limit=0"],
)
async def test_customer_search_refuses_bad_parameters(api: Api, query: str) -> None:
    status, body = await api.call("GET", "/api/customers?" + query)
    assert (status, body["error"]) == (400, "invalid_field")


async def add_call(pool: asyncpg.Pool[Any], n: int, **kw: Any) -> None:
    at = T0 + timedelta(minutes=n)
    row = {
        "call_id": f"17000000{n:02d}.1",
        "caller": "+15551230001",
        "queue": "support",
        "outcome": "answered",
        "agents": [{"agent": "1001", "answered_at": at.isoformat(), "talk_s": 10}],
        "started_at": at,
        "ended_at": at + timedelta(seconds=30),
        **kw,
    }
    await pool.execute(
        "INSERT INTO call_records (call_id, caller, queue, outcome, agents, started_at,"
        " ended_at, customer_id, direction) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        row["call_id"],
        row["caller"],
        row["queue"],
        row["outcome"],
        row["agents"],
        row["started_at"],
        row["ended_at"],
        row.get("customer_id"),
        row.get("direction", "inbound"),
    )


async def calls(api: Api, **params: str) -> list[str]:
    status, body = await api.call("GET", "/api/calls?" + urlencode(params))
    assert status == 200, body
    return [c["call_id"] for c in body["calls"]]


async def test_calls_are_listed_newest_first_with_filters(
    api: Api, pool: asyncpg.Pool[Any]
) -> None:
    await add_call(pool, 1)
    await add_call(pool, 2, queue="senior", customer_id="c1")
    await add_call(pool, 3, outcome="abandoned", agents=[])
    await add_call(pool, 4, agents=[{"agent": "2002", "answered_at": None, "talk_s": 5}])
    await add_call(pool, 5, direction="outbound")
    # a disposition waiting for its record is not a call
    await pool.execute("INSERT INTO call_records (call_id, disposition) VALUES ('9.9', 'resolved')")
    assert await calls(api) == [f"17000000{n:02d}.1" for n in (5, 4, 3, 2, 1)]
    assert await calls(api, agent="1001") == ["1700000005.1", "1700000002.1", "1700000001.1"]
    assert await calls(api, agent="2002") == ["1700000004.1"]
    assert await calls(api, queue="senior") == ["1700000002.1"]
    assert await calls(api, outcome="abandoned") == ["1700000003.1"]
    assert await calls(api, customer="c1") == ["1700000002.1"]
    assert await calls(api, direction="outbound") == ["1700000005.1"]
    since = (T0 + timedelta(minutes=2)).isoformat()
    until = (T0 + timedelta(minutes=4)).isoformat()
    assert await calls(api, since=since, until=until) == ["1700000003.1", "1700000002.1"]
    assert await calls(api, agent="1001", queue="support") == ["1700000005.1", "1700000001.1"]
    _, body = await api.call("GET", "/api/calls?limit=1")
    record = body["calls"][0]
    assert record["agents"][0]["agent"] == "1001" and record["started_at"].startswith("2026-11-02")
    assert set(record) >= {"call_id", "caller", "outcome", "disposition", "direction", "source"}


async def test_calls_pages_follow_the_cursor_without_gaps(
    api: Api, pool: asyncpg.Pool[Any]
) -> None:
    for n in range(7):
        await add_call(pool, n)
    await add_call(pool, 99, started_at=T0 + timedelta(minutes=3))  # same time as call 3
    seen: list[str] = []
    cursor = None
    while True:
        query = "limit=3" + (f"&cursor={quote(cursor)}" if cursor else "")
        status, body = await api.call("GET", "/api/calls?" + query)
        assert status == 200
        seen += [c["call_id"] for c in body["calls"]]
        cursor = body["next"]
        if cursor is None:
            break
    assert len(seen) == 8 and len(set(seen)) == 8
    assert seen.index("1700000099.1") < seen.index("1700000003.1")  # ties: by call id


@pytest.mark.parametrize(
    "query",
    [
        "outcome=lost",
        "direction=sideways",
        "agent=bad%20id",
        "queue=a%0Ab",
        "since=yesterday",
        "since=2026-11-02T10:00:00Z&until=2026-11-02T09:00:00Z",
        "cursor=AAAA",
        "limit=501",
        "limit=-1",
        "agnet=1001",
        "queue=a&queue=b",
    ],
)
async def test_calls_refuse_bad_parameters(api: Api, query: str) -> None:
    status, body = await api.call("GET", "/api/calls?" + query)
    assert (status, body["error"]) == (400, "invalid_field"), body


async def test_calls_need_an_admin(api: Api, tokens: dict[str, str]) -> None:
    status, _ = await api.call("GET", "/api/calls", token=tokens["agent"])
    assert status == 403
    status, _ = await api.call("GET", "/api/calls", token="nope")
    assert status == 401


async def test_a_disposition_filed_by_its_agent_shows_in_the_audit(
    api: Api, pool: asyncpg.Pool[Any]
) -> None:
    await record_participant(pool, "1700000000.1", "1001", "answered")
    agent = Agent("1001", "Agent 1001", "agent", "1001")
    await save_disposition(pool, "1700000000.1", agent, "follow_up", "call back")
    status, body = await api.call("GET", "/api/audit?call=1700000000.1")
    assert status == 200
    [entry] = body["entries"]
    assert (entry["actor"], entry["action"]) == ("1001", "disposition.file")
    assert entry["after"]["disposition"] == "follow_up"
    assert json.dumps(entry)  # plain JSON
