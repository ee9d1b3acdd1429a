"""The desk creates and corrects customers through the CRM connector: the built-in store
(audited, cache invalidated by NOTIFY, so the next lookup knows the caller), a generic REST
CRM and the prebuilt vendors; corrections only where `[permissions] agents_edit` allows,
and a refusal changes nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest

from bridge.connectors import build_connector
from bridge.crm.agents import create_agent
from bridge.crm.customer_edits import edit_policy
from bridge.crm.directory import PostgresDirectory
from bridge.pops.agent_routes import AgentDeps, setup_agent_routes
from bridge.web import HttpServer, make_web_app
from tests.connectors.crm_server import CrmServer
from tests.connectors.prebuilt_fixtures import VENDORS, vendor
from tests.connectors.test_rest_connector import config_for
from tests.crm.fixture_crm import ALICE, BOB, load_trace_crm


@dataclass
class Desk:
    url: str
    tokens: dict[str, str]
    pool: asyncpg.Pool[Any]

    async def call(
        self, method: str, path: str, who: str | None, body: Any = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        data = body if isinstance(body, bytes) else None if body is None else json.dumps(body)
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with (
            aiohttp.ClientSession() as s,
            s.request(method, self.url + path, data=data, headers=headers) as r,
        ):
            return r.status, await r.json()


@asynccontextmanager
async def desk(pool: asyncpg.Pool[Any], **deps: Any) -> AsyncIterator[Desk]:
    tokens = await load_trace_crm(pool)
    tokens["boss"] = await create_agent(pool, "boss", "Supervisor", "supervisor", "9001")
    app = make_web_app(setups=[lambda app: setup_agent_routes(app, AgentDeps(pool, 8765, **deps))])
    server = HttpServer(app, "127.0.0.1", 0)
    await server.start()
    try:
        yield Desk(server.url, tokens, pool)
    finally:
        await server.stop()


async def eventually(probe: Any, *, within_s: float = 30.0) -> Any:
    """Poll an async probe until it answers something truthy (NOTIFY is asynchronous)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not (value := await probe()):
        assert loop.time() < deadline, "never happened"
        await asyncio.sleep(0.01)
    return value


async def changes(pool: asyncpg.Pool[Any]) -> list[Any]:
    return await pool.fetch(
        "SELECT actor, action, target_id, before, after FROM audit_log ORDER BY id"
    )


@pytest.mark.parametrize(
    ("role", "setting", "owner", "allowed"),
    [
        ("agent", "own", None, True),
        ("agent", "own", "1001", True),
        ("agent", "own", "1002", False),
        ("agent", "none", None, False),
        ("agent", "none", "1001", False),
        ("agent", "all", "1002", True),
        ("supervisor", "none", "1002", True),
        ("admin", "own", "1002", True),
    ],
)
def test_who_may_correct_a_customer(role: str, setting: str, owner: str | None, allowed: bool):
    assert edit_policy(role, "1001", setting)(owner) is allowed


async def test_a_created_caller_is_known_to_the_next_lookup(pool: asyncpg.Pool[Any]) -> None:
    directory = PostgresDirectory(pool, keepalive_s=0.5)
    await directory.start()
    try:
        async with desk(pool, connector=build_connector(_builtin(), directory)) as d:
            assert await directory.lookup("+15559870001") is None  # a cached miss
            body = {"name": "Dana Stranger", "phone": "+15559870001", "tags": ["new"]}
            status, created = await d.call("POST", "/agent/api/customers", "1001", body)
            assert status == 201
            found = await eventually(lambda: directory.lookup("+15559870001"))
            assert (found.id, found.name, found.tags) == (created["id"], "Dana Stranger", ("new",))
            [row] = await changes(pool)
            assert (row["actor"], row["action"], row["target_id"]) == (
                "1001", "customer.create", created["id"]
            )  # fmt: skip
    finally:
        await directory.stop()


def _builtin() -> Any:
    from bridge.config import build_config

    return build_config({}, {}, runtime=False)


async def test_a_rest_crm_receives_the_new_customer_and_finds_it_next(
    pool: asyncpg.Pool[Any],
) -> None:
    server = CrmServer()
    await server.start()
    connector = build_connector(config_for(server.url, create_url=f"{server.url}/customers"))  # type: ignore[arg-type]
    await connector.start()
    try:
        async with desk(pool, connector=connector) as d:
            body = {"name": "Eve <i>New</i>", "phone": "+15559870002", "tags": ["vip"]}
            status, created = await d.call("POST", "/agent/api/customers", "1001", body)
            assert status == 201 and created["id"].startswith("ext-")
            found = await connector.lookup("+15559870002")
            assert found is not None and (found.id, found.name) == (created["id"], body["name"])
            assert found.tags == ("vip",)
            status, answer = await d.call("POST", "/agent/api/customers", "1001", body)
            assert status == 409 and "already belongs" in answer["reason"]
            assert [r["action"] for r in await changes(pool)] == ["customer.create"]
            assert await pool.fetchval("SELECT count(*) FROM customers") == 3  # not ours
            status, answer = await d.call(
                "PATCH", f"/agent/api/customers/{created['id']}", "1001", {"name": "Eve"}
            )
            assert status == 501 and "CRM" in answer["reason"]
    finally:
        await connector.stop()
        await server.close()


async def test_a_rest_crm_without_create_url_refuses_clearly(pool: asyncpg.Pool[Any]) -> None:
    server = CrmServer()
    await server.start()
    connector = build_connector(config_for(server.url))  # type: ignore[arg-type]
    await connector.start()
    try:
        async with desk(pool, connector=connector) as d:
            body = {"name": "Dana", "phone": "+15559870003"}
            status, answer = await d.call("POST", "/agent/api/customers", "1001", body)
            assert status == 501 and "create_url" in answer["reason"]
            assert await changes(pool) == []
    finally:
        await connector.stop()
        await server.close()


@pytest.mark.parametrize("name", VENDORS)
async def test_a_vendor_crm_receives_the_new_customer(pool: asyncpg.Pool[Any], name: str) -> None:
    async with vendor(name) as v, desk(pool, connector=v.connector) as d:
        body = {"name": "Carol Diaz", "phone": "+15557770001", "tags": ["new"]}
        status, created = await d.call("POST", "/agent/api/customers", "1001", body)
        assert status == 201
        found = await v.connector.lookup("+15557770001")
        assert found is not None and found.id == created["id"] and found.name == "Carol Diaz"
        assert v.fake.violations == []
        [row] = await changes(pool)
        assert row["action"] == "customer.create" and row["target_id"] == created["id"]


async def test_an_agent_corrects_a_customer_nobody_owns_and_it_is_audited(
    pool: asyncpg.Pool[Any],
) -> None:
    async with desk(pool) as d:
        body = {"name": "Alice Chen-Wu", "tags": ["vip", "gold"]}
        status, answer = await d.call("PATCH", f"/agent/api/customers/{ALICE}", "1001", body)
        assert status == 200
        assert answer == {
            "id": ALICE,
            "name": "Alice Chen-Wu",
            "tags": ["gold", "vip"],
            "owner": None,
        }
        [row] = await changes(pool)
        assert (row["actor"], row["action"], row["target_id"]) == ("1001", "customer.update", ALICE)
        before, after = row["before"], row["after"]
        assert (before["name"], before["tags"]) == ("Alice Chen", ["vip"])
        assert (after["name"], after["tags"]) == ("Alice Chen-Wu", ["gold", "vip"])
        status, answer = await d.call("PATCH", f"/agent/api/customers/{BOB}", "1001", {"tags": []})
        assert status == 200 and answer["name"] == "Bob Li" and answer["tags"] == []


async def _owned_by_1002(pool: asyncpg.Pool[Any]) -> None:
    await pool.execute(
        "INSERT INTO customer_owners (customer_id, agent_id) VALUES ($1, '1002')", ALICE
    )


async def test_another_agents_customer_is_refused_and_nothing_changes(
    pool: asyncpg.Pool[Any],
) -> None:
    async with desk(pool) as d:
        await _owned_by_1002(pool)
        path = f"/agent/api/customers/{ALICE}"
        status, answer = await d.call("PATCH", path, "1001", {"name": "Mallory"})
        assert status == 403 and answer["error"] == "forbidden"
        assert (
            await pool.fetchval("SELECT name FROM customers WHERE id = $1", ALICE) == "Alice Chen"
        )
        assert await changes(pool) == []
        assert (await d.call("PATCH", path, "1002", {"name": "Alice C."}))[0] == 200
        assert (await d.call("PATCH", path, "boss", {"name": "Alice Chen"}))[0] == 200
        assert [r["actor"] for r in await changes(pool)] == ["1002", "boss"]


async def test_agents_edit_none_leaves_it_to_supervisors(pool: asyncpg.Pool[Any]) -> None:
    async with desk(pool, agents_edit="none") as d:
        path = f"/agent/api/customers/{BOB}"
        assert (await d.call("PATCH", path, "1001", {"name": "Robert"}))[0] == 403
        assert (await d.call("PATCH", path, "boss", {"name": "Robert"}))[0] == 200
        assert await pool.fetchval("SELECT name FROM customers WHERE id = $1", BOB) == "Robert"


async def test_agents_edit_all_lets_any_agent(pool: asyncpg.Pool[Any]) -> None:
    async with desk(pool, agents_edit="all") as d:
        await _owned_by_1002(pool)
        assert (await d.call("PATCH", f"/agent/api/customers/{ALICE}", "1001", {"tags": []}))[
            0
        ] == 200


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("cust-nobody", {"name": "X"}, 404, None),
        (ALICE, {"name": "x\r\nInjected"}, 400, "name"),
        (ALICE, {"name": "Nul\x00"}, 400, "name"),
        (ALICE, {"name": "N" * 5000}, 400, "name"),
        (ALICE, {"name": ""}, 400, "name"),
        (ALICE, {"tags": ["<script>"]}, 400, "tags[0]"),
        (ALICE, {"tags": "vip"}, 400, "tags"),
        (ALICE, {"owner": "1001"}, 400, "owner"),
        (ALICE, {"phone": "+15550000000"}, 400, "phone"),
        (ALICE, {}, 400, "name"),
        (ALICE, b"\xff\xfe", 400, None),
        (ALICE, b"[1, 2]", 400, None),
        ("%20cust-alice", {"name": "X"}, 400, "id"),
    ],
)
async def test_a_bad_correction_is_refused_and_nothing_changes(
    pool: asyncpg.Pool[Any], path: str, body: Any, status: int, field: str | None
) -> None:
    async with desk(pool) as d:
        got, answer = await d.call("PATCH", f"/agent/api/customers/{path}", "1001", body)
        assert got == status
        if field is not None:
            assert answer["field"] == field
        assert (
            await pool.fetchval("SELECT name FROM customers WHERE id = $1", ALICE) == "Alice Chen"
        )
        assert await changes(pool) == []


async def test_correcting_needs_an_agent_token(pool: asyncpg.Pool[Any]) -> None:
    async with desk(pool) as d:
        assert (await d.call("PATCH", f"/agent/api/customers/{ALICE}", None, {"name": "X"}))[
            0
        ] == 401
        assert await changes(pool) == []
