"""The CRM connector is told of every customer merge (issue 17): merges made by the CLI's
function reach a real REST endpoint on loopback, in order, once acknowledged; a failing CRM
leaves them pending; one bridge delivers at a time. Rounds are driven directly or awaited
through the notifier's round counter, never by sleeping."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from bridge.config import build_config
from bridge.connectors import BuiltinConnector, RestConnector
from bridge.crm.listener import PgListener
from bridge.crm.merge import merge, merges
from bridge.crm.merge_notice import MERGE_LOCK, MergeNotifier
from bridge.errors import ConfigError

TOKEN = "Bearer merge-s3cret"


class MergeEndpoint:
    """A CRM's merge endpoint: records each request; answers `status` (503 to fail)."""

    def __init__(self) -> None:
        self.status = 200
        self.received: list[tuple[str, dict[str, str], Any]] = []
        self.got_one = asyncio.Event()
        app = web.Application()
        app.router.add_post("/merges/{merge_id}", self._post)
        self._runner = web.AppRunner(app)
        self.url = ""

    async def _post(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.received.append((request.path, dict(request.headers), body))
        self.got_one.set()
        return web.json_response({"ok": self.status < 300}, status=self.status)

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        await self._runner.cleanup()

    def bodies(self) -> list[Any]:
        return [body for _path, _headers, body in self.received]


@pytest.fixture
async def endpoint() -> AsyncIterator[MergeEndpoint]:
    server = MergeEndpoint()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def rest(endpoint: MergeEndpoint) -> AsyncIterator[RestConnector]:
    config = build_config(
        {
            "crm": {
                "connector": "rest",
                "lookup_url": f"{endpoint.url}/customers?phone={{phone}}",
                "merge_url": f"{endpoint.url}/merges/{{merge_id}}",
                "auth_header": f"Authorization: {TOKEN}",
            }
        },
        {},
        runtime=False,
    )
    connector = RestConnector(config.crm, retries=0)
    await connector.start()
    try:
        yield connector
    finally:
        await connector.stop()


async def customers(pool: asyncpg.Pool[Any], *ids: str) -> None:
    for n, cid in enumerate(ids):
        await pool.execute("INSERT INTO customers (id, name) VALUES ($1, $2)", cid, f"N{n}")
        await pool.execute(
            "INSERT INTO customer_phones (e164, customer_id) VALUES ($1, $2)",
            f"+1555123{n:04d}",
            cid,
        )


async def notified(pool: asyncpg.Pool[Any]) -> dict[int, bool]:
    rows = await pool.fetch("SELECT id, crm_notified_at IS NOT NULL AS told FROM customer_merges")
    return {r["id"]: r["told"] for r in rows}


async def test_rest_crm_is_told_of_a_merge_with_its_exact_document_and_key(
    pool: asyncpg.Pool[Any], endpoint: MergeEndpoint, rest: RestConnector
) -> None:
    await customers(pool, "c1", "c2", "c3")
    result = await merge(pool, "c1", ["c2", "c3"], actor="admin:sue")
    assert result.merge_id is not None
    [record] = await merges(pool)
    notifier = MergeNotifier(pool, rest.merged)
    assert await notifier.deliver_round() == "done"
    [(path, headers, body)] = endpoint.received
    assert path == f"/merges/{result.merge_id}"
    assert body == {
        "merge_id": result.merge_id,
        "survivor_id": "c1",
        "merged_ids": ["c2", "c3"],
        "at": record.at,
        "actor": "admin:sue",
    }
    assert headers["Idempotency-Key"] == str(result.merge_id)
    assert headers["Authorization"] == TOKEN
    assert headers["Content-Type"] == "application/json"
    assert await notified(pool) == {result.merge_id: True}
    assert notifier.health().detail["pending"] == 0
    assert await notifier.deliver_round() == "done"  # told once: nothing sent again
    assert len(endpoint.received) == 1


async def test_a_failing_crm_leaves_merges_pending_and_a_later_round_delivers_in_order(
    pool: asyncpg.Pool[Any], endpoint: MergeEndpoint, rest: RestConnector
) -> None:
    await customers(pool, "a1", "a2", "b1", "b2")
    first = (await merge(pool, "a1", ["a2"])).merge_id
    second = (await merge(pool, "b1", ["b2"])).merge_id
    notifier = MergeNotifier(pool, rest.merged)
    endpoint.status = 503
    assert await notifier.deliver_round() == "failed"
    assert await notified(pool) == {first: False, second: False}
    health = notifier.health()
    assert health.state == "degraded" and health.required is False
    assert health.detail["pending"] == 2 and "503" in health.detail["error"]
    assert [b["merge_id"] for b in endpoint.bodies()] == [first]  # stopped at the first
    endpoint.status = 200
    assert await notifier.deliver_round() == "done"
    assert [b["merge_id"] for b in endpoint.bodies()] == [first, first, second]
    assert await notified(pool) == {first: True, second: True}
    assert notifier.health().detail == {"pending": 0, "delivered": 2}


async def test_hostile_ids_travel_as_json_data(
    pool: asyncpg.Pool[Any], endpoint: MergeEndpoint, rest: RestConnector
) -> None:
    survivor = "x'); DROP TABLE customers; --"
    others = ['<script>alert("pop")</script>', 'Zoë \\ "quoted" \u2028 {merge_id}']
    await customers(pool, survivor, *others)
    merge_id = (await merge(pool, survivor, others, reason="</b>")).merge_id
    assert await MergeNotifier(pool, rest.merged).deliver_round() == "done"
    [(path, headers, body)] = endpoint.received
    assert path == f"/merges/{merge_id}"  # ids never reach the URL or a header
    assert headers["Idempotency-Key"] == str(merge_id)
    assert body["survivor_id"] == survivor and body["merged_ids"] == others
    assert await pool.fetchval("SELECT count(*) FROM customers") == 1


async def test_the_builtin_crm_acknowledges_without_sending(pool: asyncpg.Pool[Any]) -> None:
    await customers(pool, "c1", "c2")
    merge_id = (await merge(pool, "c1", ["c2"])).merge_id
    builtin = BuiltinConnector()
    assert await MergeNotifier(pool, builtin.merged).deliver_round() == "done"
    assert builtin.merges_acknowledged == 1
    assert await notified(pool) == {merge_id: True}


async def test_rest_without_merge_url_acknowledges_without_sending(
    pool: asyncpg.Pool[Any], endpoint: MergeEndpoint
) -> None:
    config = build_config(
        {"crm": {"connector": "rest", "lookup_url": f"{endpoint.url}/c?p={{phone}}"}},
        {},
        runtime=False,
    )
    connector = RestConnector(config.crm)
    await connector.start()
    try:
        await customers(pool, "c1", "c2")
        merge_id = (await merge(pool, "c1", ["c2"])).merge_id
        assert await MergeNotifier(pool, connector.merged).deliver_round() == "done"
    finally:
        await connector.stop()
    assert endpoint.received == []
    assert await notified(pool) == {merge_id: True}


async def test_only_one_bridge_delivers_at_a_time(
    pool: asyncpg.Pool[Any], endpoint: MergeEndpoint, rest: RestConnector
) -> None:
    await customers(pool, "c1", "c2")
    merge_id = (await merge(pool, "c1", ["c2"])).merge_id
    notifier = MergeNotifier(pool, rest.merged)
    async with pool.acquire() as other_bridge:
        assert await other_bridge.fetchval("SELECT pg_try_advisory_lock($1)", MERGE_LOCK)
        try:
            assert await notifier.deliver_round() == "busy"
        finally:
            await other_bridge.execute("SELECT pg_advisory_unlock($1)", MERGE_LOCK)
    assert endpoint.received == [] and await notified(pool) == {merge_id: False}
    assert await notifier.deliver_round() == "done"
    assert await notified(pool) == {merge_id: True}


async def until_told(notifier: MergeNotifier, pool: asyncpg.Pool[Any], merge_id: int) -> None:
    while True:
        seen = notifier.rounds
        if (await notified(pool)).get(merge_id):
            return
        await notifier.wait_rounds(seen + 1)


async def test_a_running_notifier_is_woken_by_the_merge_notification(
    pool: asyncpg.Pool[Any], endpoint: MergeEndpoint, rest: RestConnector
) -> None:
    await customers(pool, "c1", "c2")
    listener = PgListener(pool, name="test-merge-listener")
    # retry_s far longer than any test: only the NOTIFY can bring the merge this soon
    notifier = MergeNotifier(pool, rest.merged, listener=listener, retry_s=3600)
    await listener.start()
    await notifier.start()
    try:
        async with asyncio.timeout(30):
            await listener.wait_listening()
            await notifier.wait_rounds(1)  # the start round found nothing
            merge_id = (await merge(pool, "c1", ["c2"])).merge_id
            assert merge_id is not None
            await until_told(notifier, pool, merge_id)
        assert notifier.health().state == "up"
    finally:
        await notifier.stop()
        await listener.stop()
    assert [b["merge_id"] for b in endpoint.bodies()] == [merge_id]


async def test_a_failing_crm_is_retried_with_a_doubling_backoff(
    pool: asyncpg.Pool[Any], endpoint: MergeEndpoint, rest: RestConnector
) -> None:
    """The loop's waits go through an injected sleep, so the test holds each one and reads
    what was asked, instead of waiting."""
    await customers(pool, "c1", "c2")
    merge_id = (await merge(pool, "c1", ["c2"])).merge_id
    assert merge_id is not None
    endpoint.status = 503
    asked: list[float] = []
    asked_changed = asyncio.Condition()
    go_on = asyncio.Event()

    async def held_sleep(seconds: float) -> None:
        async with asked_changed:
            asked.append(seconds)
            asked_changed.notify_all()
        await go_on.wait()
        go_on.clear()

    notifier = MergeNotifier(
        pool, rest.merged, retry_s=3, backoff_s=1, sleep=held_sleep, rng=lambda: 1.0
    )
    await notifier.start()
    try:
        async with asyncio.timeout(30):
            for expected in ([1.0], [1.0, 2.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 3.0]):
                wanted = len(expected)
                async with asked_changed:
                    await asked_changed.wait_for(lambda: len(asked) >= wanted)  # noqa: B023
                assert asked == expected  # doubling, capped at merge_retry_s
                assert notifier.health().state == "degraded"
                if len(expected) < 4:
                    go_on.set()
            endpoint.status = 200
            go_on.set()
            await until_told(notifier, pool, merge_id)
        assert notifier.health().state == "up" and notifier.failures == 0
    finally:
        await notifier.stop()


def test_merge_keys_are_validated() -> None:
    for values, key in (
        ({"merge_url": "ftp://crm.example/merges"}, "crm.merge_url"),
        ({"merge_retry_s": 0}, "crm.merge_retry_s"),
    ):
        with pytest.raises(ConfigError) as info:
            build_config({"crm": values}, {}, runtime=False)
        assert info.value.key == key
