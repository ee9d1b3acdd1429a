"""Click-to-call over HTTP with real PostgreSQL: who may dial, what is refused (400, 403,
404, 429), that a refusal sends nothing to the PBX, and that every attempt is audited; then
the callback list and a call back that empties it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from bridge.ami.protocol import Frame
from bridge.config import build_config
from bridge.crm.agents import create_agent, set_active
from bridge.dial.routes import DialDeps, setup_dial_routes
from bridge.dial.service import Dialer
from bridge.pops.agent_routes import AgentDeps, setup_agent_routes
from bridge.web import HttpServer, make_web_app
from tests.admin.api import mount_admin_api
from tests.crm.fixture_crm import load_trace_crm

CONFIG = build_config(
    {"http": {"port": 0}, "dial": {"per_minute": 3}, "pbx": {"agent_channel": "PJSIP/{ext}"}},
    {},
    runtime=False,
)
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


@dataclass
class FakePbx:
    """The AMI link's `action`: records each action, answers like Asterisk does."""

    sent: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    answer: str = "Success"

    async def action(self, name: str, fields: Mapping[str, str | int]) -> Frame:
        self.sent.append((name, {k: str(v) for k, v in fields.items()}))
        message = "Originate successfully queued" if self.answer == "Success" else "Failed"
        return Frame([("Response", self.answer), ("Message", message)])


@dataclass
class Site:
    url: str
    tokens: dict[str, str]
    pool: asyncpg.Pool[Any]
    pbx: FakePbx
    clock: list[float]


@pytest.fixture
async def site(pool: asyncpg.Pool[Any]) -> AsyncIterator[Site]:
    tokens = await load_trace_crm(pool)
    tokens["boss"] = await create_agent(pool, "boss", "Supervisor", "supervisor", "9001")
    tokens["root"] = await create_agent(pool, "root", "Admin", "admin", "9002")
    pbx = FakePbx()
    clock = [1000.0]
    dialer = Dialer(pool, CONFIG, pbx.action, clock=lambda: clock[0])
    members = {"1001": {"support"}, "1002": {"support"}, "2001": {"senior"}}
    deps = DialDeps(pool, dialer, queues_of=members.get, now=lambda: NOW)
    app = make_web_app(
        setups=[
            lambda app: setup_agent_routes(app, AgentDeps(pool, 8765)),
            lambda app: setup_dial_routes(app, deps),
            lambda app: mount_admin_api(app, pool, CONFIG),
        ]
    )
    server = HttpServer(app, "127.0.0.1", 0)
    await server.start()
    try:
        yield Site(server.url, tokens, pool, pbx, clock)
    finally:
        await server.stop()


async def call(
    site: Site, method: str, path: str, token: str | None, body: Any = None
) -> tuple[int, Any, Mapping[str, str]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body)
    if data is not None:
        headers["Content-Type"] = "application/json"
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, site.url + path, data=data, headers=headers) as r,
    ):
        return r.status, await r.json(), dict(r.headers)


async def dials_audited(pool: asyncpg.Pool[Any]) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT actor, target_id, after FROM audit_log WHERE action = 'call.dial' ORDER BY id"
    )
    return [{"actor": r["actor"], "call_id": r["target_id"], **r["after"]} for r in rows]


async def test_an_agent_dials_from_its_own_device_and_gets_the_call_id(site: Site) -> None:
    status, body, _ = await call(
        site, "POST", "/agent/api/dial", site.tokens["1001"], {"number": "(555) 123-0002"}
    )
    assert status == 202, body
    assert body["agent"] == "1001" and body["number"] == "+15551230002"
    assert body["call_id"].startswith("c2d-")
    [(name, fields)] = site.pbx.sent
    assert name == "Originate"
    assert fields == {
        "Channel": "PJSIP/1001",
        "Context": "from-internal",
        "Exten": "15551230002",
        "Priority": "1",
        "Timeout": "30000",
        "ChannelId": body["call_id"],
        "Async": "true",
    }
    [entry] = await dials_audited(site.pool)
    assert entry["actor"] == "1001" and entry["call_id"] == body["call_id"]
    assert entry["result"] == "queued" and entry["number"] == "(555) 123-0002"


@pytest.mark.parametrize(
    "number",
    [
        "15551230002\r\nApplication: System",
        "1234,Application,System",
        "*",
        "+1 900 555 0100",
        "1" * 40,
        "call me",
        12345,
    ],
)
async def test_a_bad_number_is_400_with_the_reason_and_nothing_is_sent(
    site: Site, number: object
) -> None:
    status, body, _ = await call(
        site, "POST", "/agent/api/dial", site.tokens["1001"], {"number": number}
    )
    assert status == 400 and body["field"] == "number" and body["reason"]
    assert site.pbx.sent == []
    [entry] = await dials_audited(site.pool)
    assert entry["result"] == "refused" and entry["call_id"] == ""


async def test_dialling_for_another_agent_from_the_desk_is_403(site: Site) -> None:
    status, body, _ = await call(
        site,
        "POST",
        "/agent/api/dial",
        site.tokens["1001"],
        {"number": "+15551230002", "agent": "1002"},
    )
    assert status == 403 and "own device" in body["reason"]
    assert site.pbx.sent == []


async def test_the_admin_api_dials_for_an_agent_and_refuses_others(site: Site) -> None:
    body = {"agent": "1002", "number": "+15551230002"}
    assert (await call(site, "POST", "/api/dial", None, body))[0] == 401
    # an agent or a supervisor may not dial for someone else through the admin API
    for who in ("1001", "boss"):
        assert (await call(site, "POST", "/api/dial", site.tokens[who], body))[0] == 403
    assert site.pbx.sent == []
    status, answer, _ = await call(site, "POST", "/api/dial", site.tokens["root"], body)
    assert status == 202 and answer["agent"] == "1002"
    assert site.pbx.sent[0][1]["Channel"] == "PJSIP/1002"
    status, _, _ = await call(
        site,
        "POST",
        "/api/dial",
        site.tokens["root"],
        {"agent": "nobody", "number": "+15551230002"},
    )
    assert status == 404
    await set_active(site.pool, "1002", False)
    status, answer, _ = await call(site, "POST", "/api/dial", site.tokens["root"], body)
    assert status == 403 and "disabled" in answer["reason"]
    assert len(site.pbx.sent) == 1
    results = [e["result"] for e in await dials_audited(site.pool)]
    assert results == ["queued", "forbidden"]
    [entry] = [e for e in await dials_audited(site.pool) if e["result"] == "forbidden"]
    assert entry["actor"] == "root" and entry["agent"] == "1002"


async def test_past_the_per_minute_limit_dials_are_429_with_retry_after(site: Site) -> None:
    token = site.tokens["1001"]
    for _ in range(3):
        assert (await call(site, "POST", "/agent/api/dial", token, {"number": "+15551230002"}))[
            0
        ] == 202
    site.clock[0] += 20
    status, _, headers = await call(
        site, "POST", "/agent/api/dial", token, {"number": "+15551230002"}
    )
    assert status == 429 and headers["Retry-After"] == "40"
    assert len(site.pbx.sent) == 3
    # another agent has its own minute
    other = await call(
        site, "POST", "/agent/api/dial", site.tokens["1002"], {"number": "+15551230002"}
    )
    assert other[0] == 202
    site.clock[0] += 40
    again = await call(site, "POST", "/agent/api/dial", token, {"number": "+15551230002"})
    assert again[0] == 202
    assert [e["result"] for e in await dials_audited(site.pool)].count("rate_limited") == 1


async def test_a_pbx_that_refuses_the_originate_is_503_and_audited(site: Site) -> None:
    site.pbx.answer = "Error"
    status, body, _ = await call(
        site, "POST", "/agent/api/dial", site.tokens["1001"], {"number": "+15551230002"}
    )
    assert status == 503 and "refused" in body["reason"]
    assert [e["result"] for e in await dials_audited(site.pool)] == ["failed"]


async def test_malformed_bodies_are_400(site: Site) -> None:
    token = site.tokens["1001"]
    for body in (b"not json", b"\xff\xfe", {"number": "+15551230002", "x": 1}, {}):
        assert (await call(site, "POST", "/agent/api/dial", token, body))[0] == 400
    assert site.pbx.sent == []


async def record(pool: asyncpg.Pool[Any], call_id: str, caller: str, **kw: Any) -> None:
    await pool.execute(
        "INSERT INTO call_records (call_id, caller, queue, outcome, started_at, direction)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        call_id,
        caller,
        kw.get("queue", "support"),
        kw.get("outcome", "abandoned"),
        kw.get("at", NOW - timedelta(hours=1)),
        kw.get("direction", "inbound"),
    )


async def callbacks(site: Site, who: str) -> list[dict[str, Any]]:
    status, body, _ = await call(site, "GET", "/agent/api/callbacks", site.tokens[who])
    assert status == 200, body
    return list(body["callbacks"])


async def test_the_callback_list_is_per_queue_oldest_first_one_line_per_number(
    site: Site,
) -> None:
    await record(site.pool, "1.1", "+15551230002", at=NOW - timedelta(hours=3))
    await record(site.pool, "1.2", "+15551230002", at=NOW - timedelta(hours=2))
    await record(site.pool, "1.3", "+15551239999", outcome="unanswered")
    await record(site.pool, "1.4", "+8613800138000", queue="senior")
    await record(site.pool, "1.5", "+15551230007", outcome="answered")  # reached someone
    await record(site.pool, "1.6", "+15551230008", at=NOW - timedelta(days=8))  # too old
    await record(site.pool, "1.7", "anonymous")  # nothing to dial
    await record(site.pool, "1.8", "+15551230009")
    await record(site.pool, "1.9", "+15551230009", outcome="answered", direction="outbound",
                 at=NOW - timedelta(minutes=30))  # fmt: skip
    mine = await callbacks(site, "1001")
    assert [(c["call_id"], c["caller"], c["attempts"]) for c in mine] == [
        ("1.1", "+15551230002", 2),
        ("1.3", "+15551239999", 1),
    ]
    assert mine[0]["customer"] == {"id": "cust-bob", "name": "Bob Li"}  # found by number
    assert mine[1]["customer"] is None
    assert [c["call_id"] for c in await callbacks(site, "2001")] == ["1.4"]
    assert [c["call_id"] for c in await callbacks(site, "boss")] == ["1.1", "1.3", "1.4"]
    assert (await call(site, "GET", "/agent/api/callbacks", None))[0] == 401


async def test_a_call_back_dials_the_missed_number_and_the_answered_call_empties_the_list(
    site: Site,
) -> None:
    await record(site.pool, "1.1", "+15551230002")
    status, body, _ = await call(
        site, "POST", "/agent/api/dial", site.tokens["1001"], {"callback_of": "1.1"}
    )
    assert status == 202 and body["number"] == "+15551230002" and body["callback_of"] == "1.1"
    assert site.pbx.sent[0][1]["Exten"] == "15551230002"
    link = await site.pool.fetchrow("SELECT * FROM call_backs WHERE call_id = $1", body["call_id"])
    assert link["callback_of"] == "1.1" and link["agent"] == "1001"
    assert [c["call_id"] for c in await callbacks(site, "1001")] == ["1.1"]  # not answered yet
    await record(site.pool, body["call_id"], "+15551230002", outcome="answered",
                 direction="outbound", at=NOW - timedelta(minutes=1))  # fmt: skip
    assert await callbacks(site, "1001") == []
    status, _, _ = await call(
        site, "POST", "/agent/api/dial", site.tokens["1001"], {"callback_of": "no-such-call"}
    )
    assert status == 404
