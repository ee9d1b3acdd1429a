from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest

from bridge.pops.agent_routes import AgentDeps, setup_agent_routes
from bridge.records.participants import record_participant
from bridge.web import HttpServer, make_web_app
from tests.crm.fixture_crm import load_trace_crm

CALL = "1700000000.42"


@pytest.fixture
async def site(pool: asyncpg.Pool[Any]) -> AsyncIterator[tuple[str, dict[str, str]]]:
    tokens = await load_trace_crm(pool)
    await record_participant(pool, CALL, "1001", "answered")
    app = make_web_app(setups=[lambda app: setup_agent_routes(app, AgentDeps(pool, 8765))])
    server = HttpServer(app, "127.0.0.1", 0)
    await server.start()
    try:
        yield server.url, tokens
    finally:
        await server.stop()


async def test_the_page_and_its_assets_are_served_with_a_strict_policy(site) -> None:
    url, _ = site
    async with aiohttp.ClientSession() as s:
        async with s.get(url + "/agent") as r:
            assert r.status == 200 and r.content_type == "text/html"
            html = await r.text()
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
            assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert '<script src="/agent/static/agent.js"' in html
        assert "<script>" not in html  # no inline script: the policy would block it anyway
        async with s.get(url + "/agent/static/agent.js") as r:
            assert r.status == 200 and r.content_type == "text/javascript"
            assert "innerHTML" not in await r.text()
        async with s.get(url + "/agent/static/agent.css") as r:
            assert r.content_type == "text/css"
        for bad in ("/agent/static/agent.html", "/agent/static/..%2F..%2Fapp.py"):
            async with s.get(url + bad) as r:
                assert r.status == 404
        async with s.get(url + "/agent/config.json") as r:
            assert await r.json() == {
                "pops_port": 8765,
                "pops_url": None,
                "tag_colors": {},
                "customer_url": "",
                "sla_s": 20,
            }


async def post(url: str, token: str | None, body: Any, call: str = CALL, **kw: Any):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as s:
        target = f"{url}/agent/api/calls/{call}/disposition"
        if isinstance(body, bytes):
            kw.setdefault("headers", {}).update(headers)
            async with s.post(target, data=body, **kw) as r:
                return r.status, await r.json()
        async with s.post(target, json=body, headers=headers) as r:
            return r.status, await r.json()


async def test_the_answering_agent_files_a_disposition(site, pool) -> None:
    url, tokens = site
    status, body = await post(url, tokens["1001"], {"disposition": "resolved", "notes": "ok"})
    assert status == 200 and body == {
        "call_id": CALL,
        "agent": "1001",
        "disposition": "resolved",
        "notes": "ok",
        "filed_by": "1001",
    }
    row = await pool.fetchrow("SELECT agent_id, disposition, notes FROM call_dispositions")
    assert tuple(row) == ("1001", "resolved", "ok")
    assert await pool.fetchval("SELECT count(*) FROM call_records") == 0


async def _written(pool) -> tuple[int, int, int]:
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM call_records) AS r,"
        " (SELECT count(*) FROM call_dispositions) AS d, (SELECT count(*) FROM audit_log) AS a"
    )
    return row["r"], row["d"], row["a"]


async def test_an_agent_only_rung_is_403_and_nothing_is_written(site, pool) -> None:
    url, tokens = site
    await record_participant(pool, CALL, "1002", "rung")
    status, answer = await post(url, tokens["1002"], {"disposition": "resolved"})
    assert (status, answer["error"]) == (403, "forbidden")
    assert await _written(pool) == (0, 0, 0)


async def test_an_agent_naming_another_agents_part_is_403(site, pool) -> None:
    url, tokens = site
    await record_participant(pool, CALL, "1002", "transferred")
    body = {"disposition": "resolved", "agent": "1002"}
    status, answer = await post(url, tokens["1001"], body)
    assert (status, answer["error"]) == (403, "forbidden")
    assert await _written(pool) == (0, 0, 0)


@pytest.mark.parametrize("who", ["1001", "boss", "root"])
async def test_a_call_that_does_not_exist_is_404_for_everyone(site, pool, who) -> None:
    url, tokens = site
    tokens = {**tokens, **await _bosses(pool)}
    status, answer = await post(url, tokens[who], {"disposition": "resolved"}, call="1799.9")
    assert (status, answer["error"]) == (404, "not_found")
    assert await _written(pool) == (0, 0, 0)


async def _bosses(pool) -> dict[str, str]:
    from bridge.crm.agents import create_agent

    return {
        "boss": await create_agent(pool, "boss", "Boss", "supervisor", "9000"),
        "root": await create_agent(pool, "root", "Root", "admin", "9001"),
    }


async def test_a_supervisor_amends_through_the_same_endpoint_audited(site, pool) -> None:
    url, tokens = site
    bosses = await _bosses(pool)
    await post(url, tokens["1001"], {"disposition": "complaint", "notes": "angry"})
    status, body = await post(url, bosses["boss"], {"disposition": "resolved", "notes": "fixed"})
    assert status == 200 and (body["agent"], body["filed_by"]) == ("1001", "boss")
    first, row = await pool.fetch("SELECT actor, action, before, after FROM audit_log ORDER BY id")
    assert (first["actor"], first["action"]) == ("1001", "disposition.file")
    assert (row["actor"], row["action"]) == ("boss", "disposition.amend")
    assert row["before"]["disposition"] == "complaint"
    assert row["after"]["disposition"] == "resolved"


async def test_unknown_fields_are_400(site, pool) -> None:
    url, tokens = site
    body = {"disposition": "resolved", "agent_id": "1002"}
    status, answer = await post(url, tokens["1001"], body)
    assert (status, answer["field"]) == (400, "agent_id")
    assert await _written(pool) == (0, 0, 0)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"disposition": "great"}, "disposition"),
        ({}, "disposition"),
        ({"disposition": "resolved", "notes": ["x"]}, "notes"),
        ({"disposition": "resolved", "notes": "x" * 5000}, "notes"),
        ({"disposition": "resolved", "agent": ["1001"]}, "agent"),
        ({"disposition": "resolved", "agent": "<script>"}, "agent"),
    ],
)
async def test_a_bad_body_is_400_naming_the_field(site, body, field) -> None:
    url, tokens = site
    status, answer = await post(url, tokens["1001"], body)
    assert status == 400 and answer["field"] == field


async def test_malformed_json_and_bad_call_ids_are_400(site) -> None:
    url, tokens = site
    ct = {"headers": {"Content-Type": "application/json"}}
    status, answer = await post(url, tokens["1001"], b"{not json", **ct)
    assert (status, answer["error"]) == (400, "invalid_json")
    status, answer = await post(url, tokens["1001"], b"\xff\xfe", **ct)
    assert (status, answer["error"]) == (400, "invalid_json")
    status, answer = await post(url, tokens["1001"], {"disposition": "resolved"}, call="a%27b")
    assert (status, answer["field"]) == (400, "call_id")


async def test_missing_or_wrong_token_is_401(site) -> None:
    url, _ = site
    for token in (None, "nope", "x" * 43):
        status, answer = await post(url, token, {"disposition": "resolved"})
        assert status == 401 and answer["error"] == "unauthorized"


async def test_another_agents_call_is_403(site, pool) -> None:
    url, tokens = site
    status, answer = await post(url, tokens["1002"], {"disposition": "resolved"})
    assert status == 403 and answer["error"] == "forbidden"
    assert await _written(pool) == (0, 0, 0)


async def test_a_filing_right_after_the_answer_waits_for_the_participant_write(
    pool: asyncpg.Pool[Any],
) -> None:
    """The page can hear "answered" before the row saying so is written: the route lets the
    writes under way land (`settle`) and asks once more, instead of refusing."""
    tokens = await load_trace_crm(pool)
    live_call = "1700000000.77"
    settled: list[str] = []

    async def settle() -> None:  # what the participant recorder's drain does
        settled.append(live_call)
        await record_participant(pool, live_call, "1002", "answered")

    deps = AgentDeps(pool, 8765, settle=settle)
    server = HttpServer(make_web_app(setups=[lambda app: setup_agent_routes(app, deps)]), port=0)
    await server.start()
    try:
        status, body = await post(
            server.url, tokens["1002"], {"disposition": "resolved"}, live_call
        )
        assert (status, body["agent"]) == (200, "1002")
        assert settled == [live_call]
        # someone who did not talk is still refused after settling
        status, _ = await post(server.url, tokens["2001"], {"disposition": "resolved"}, live_call)
        assert status == 403
    finally:
        await server.stop()
