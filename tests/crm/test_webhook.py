"""The CRM → bridge webhook over a real aiohttp server on loopback and real PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.config import build_config
from bridge.crm.webhook import SIGNATURE_HEADER, WebhookDeps, setup_webhook_routes, sign
from tests.admin.routing_probe import running_router
from tests.crm.fixture_crm import ALICE, BOB, load_trace_crm

SECRET = "s3cret-for-tests"
NOW = 1_800_000_000  # the test clock (2027-01-15)


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def _client(pool: asyncpg.Pool[Any], secret: str, clock: Clock) -> TestClient[Any, Any]:
    config = build_config({"webhook": {"secret": secret, "max_skew_s": 300}}, {}, runtime=False)
    app = web.Application()
    setup_webhook_routes(app, WebhookDeps(pool=pool, config=config, clock=clock))
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    return client


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(pool: asyncpg.Pool[Any], clock: Clock) -> AsyncIterator[TestClient[Any, Any]]:
    c = await _client(pool, SECRET, clock)
    try:
        yield c
    finally:
        await c.close()


Post = Callable[..., Any]


@pytest.fixture
def post(client: TestClient[Any, Any]) -> Post:
    """POST a body signed with the secret at the test clock (or as told)."""

    async def go(
        body: Any,
        *,
        t: int = NOW,
        secret: str = SECRET,
        header: str | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        data = raw if raw is not None else json.dumps(body).encode()
        sig = header if header is not None else sign(secret, data, t)
        resp = await client.post(
            "/crm/webhook",
            data=io.BytesIO(data) if len(data) > 512 * 1024 else data,
            headers={SIGNATURE_HEADER: sig, "Content-Type": "application/json"},
        )
        assert resp.content_type == "application/json"
        return resp.status, await resp.json()

    return go


def upsert(cid: str, at: str, **fields: Any) -> dict[str, Any]:
    return {"type": "customer.upsert", "updated_at": at, "customer": {"id": cid, **fields}}


T1 = "2027-01-15T07:00:00Z"
T2 = "2027-01-15T07:05:00Z"
T3 = "2027-01-15T07:10:00Z"


async def _customer(pool: asyncpg.Pool[Any], cid: str) -> dict[str, Any] | None:
    from bridge.crm import customers

    return await customers.get(pool, cid)


async def _counts(pool: asyncpg.Pool[Any]) -> dict[str, int]:
    out = {}
    for table in ("customers", "customer_phones", "customer_tags", "audit_log", "webhook_seen"):
        out[table] = await pool.fetchval(f"SELECT count(*) FROM {table}")
    return out


async def _agent(pool: asyncpg.Pool[Any], aid: str) -> None:
    await pool.execute(
        "INSERT INTO agents (id, name, device, token_hash) VALUES ($1, $1, $1, $2)",
        aid,
        "hash-" + aid,
    )


async def test_signed_upsert_creates_the_customer_and_audits_it(
    pool: asyncpg.Pool[Any], post: Post
) -> None:
    await _agent(pool, "1001")
    status, body = await post(
        {
            "changes": [
                {
                    "id": "evt-1",
                    **upsert(
                        "c-42",
                        T1,
                        name="Alice Chen",
                        phones=["+1 555 123 0001", "+15551230001"],
                        tags=["vip", "gold"],
                        attributes={"lifetime_value": 12000},
                        owner="1001",
                    ),
                }
            ]
        }
    )
    assert status == 200, body
    assert body["applied"] == 1
    assert body["results"] == [
        {"index": 0, "id": "evt-1", "type": "customer.upsert", "status": "applied"}
    ]
    customer = await _customer(pool, "c-42")
    assert customer is not None
    assert customer["name"] == "Alice Chen"
    assert customer["phones"] == ["+15551230001"]
    assert customer["tags"] == ["gold", "vip"]
    assert customer["attributes"] == {"lifetime_value": 12000}
    assert customer["owner"] == "1001"
    audit = await pool.fetch("SELECT actor, action, target_id, before, after FROM audit_log")
    assert [(a["actor"], a["action"], a["target_id"]) for a in audit] == [
        ("crm-webhook", "customer.create", "c-42")
    ]
    assert audit[0]["before"] is None
    assert audit[0]["after"]["tags"] == ["gold", "vip"]


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        "t=1800000000",
        "v1=" + "0" * 64,
        "t=abc,v1=" + "0" * 64,
        "t=1800000000,v1=xyz",
        "t=1800000000,v1=" + "0" * 64,
        "t=1800000000,t=1800000000,v1=" + "0" * 64,
        "t=1800000000\r\nX-Evil: 1,v1=" + "0" * 64,
    ],
)
async def test_bad_or_missing_signature_is_refused_and_changes_nothing(
    pool: asyncpg.Pool[Any], client: TestClient[Any, Any], header: str
) -> None:
    data = json.dumps({"changes": [upsert("c-1", T1, name="Mallory")]}).encode()
    headers = {"Content-Type": "application/json"}
    if header:
        headers[SIGNATURE_HEADER] = header.replace("\r\n", " ")
    resp = await client.post("/crm/webhook", data=data, headers=headers)
    assert resp.status == 401
    body = await resp.json()
    assert body["status"] == 401 and body["error"] == "unauthorized"
    assert (await _counts(pool)) == dict.fromkeys(
        ("customers", "customer_phones", "customer_tags", "audit_log", "webhook_seen"), 0
    )


async def test_signature_with_wrong_secret_or_tampered_body_is_refused(
    pool: asyncpg.Pool[Any], post: Post
) -> None:
    body = {"changes": [upsert("c-1", T1, name="Mallory")]}
    status, reply = await post(body, secret="not-the-secret")
    assert status == 401, reply
    signed = json.dumps(body).encode()
    tampered = signed.replace(b"Mallory", b"Mallorz")
    status, reply = await post(None, raw=tampered, header=sign(SECRET, signed, NOW))
    assert status == 401
    assert await _customer(pool, "c-1") is None
    assert (await _counts(pool))["webhook_seen"] == 0


async def test_rotated_secret_signature_list_accepts_any_matching_entry(post: Post) -> None:
    data = json.dumps({"changes": [upsert("c-1", T1, name="Ann")]}).encode()
    good = sign(SECRET, data, NOW).split(",")[1]
    header = f"t={NOW},v1={'a' * 64},{good}"
    status, reply = await post(None, raw=data, header=header)
    assert status == 200, reply


@pytest.mark.parametrize("offset", [-301, 301, -10_000_000])
async def test_timestamp_outside_max_skew_is_refused(
    pool: asyncpg.Pool[Any], post: Post, offset: int
) -> None:
    status, reply = await post({"changes": [upsert("c-1", T1, name="Ann")]}, t=NOW + offset)
    assert status == 401
    assert "300" in reply["reason"]
    assert await _customer(pool, "c-1") is None


async def test_timestamp_inside_max_skew_is_accepted(post: Post) -> None:
    status, _ = await post({"changes": [upsert("c-1", T1, name="Ann")]}, t=NOW - 299)
    assert status == 200


async def test_replayed_request_is_refused_even_after_a_restart(
    pool: asyncpg.Pool[Any], post: Post, clock: Clock
) -> None:
    data = json.dumps({"changes": [{"type": "tag.add", "customer_id": "c-1", "tag": "vip",
                                    "updated_at": T2}]}).encode()  # fmt: skip
    await post({"changes": [upsert("c-1", T1, name="Ann")]})
    header = sign(SECRET, data, NOW)
    status, reply = await post(None, raw=data, header=header)
    assert status == 200 and reply["applied"] == 1
    # the customer loses the tag afterwards; a replay must not bring it back
    await pool.execute("DELETE FROM customer_tags")
    status, reply = await post(None, raw=data, header=header)
    assert status == 409 and reply["error"] == "replayed"
    # a second server process on the same database (a restart) remembers it too
    clock.now += 100
    other = await _client(pool, SECRET, clock)
    try:
        resp = await other.post(
            "/crm/webhook",
            data=data,
            headers={SIGNATURE_HEADER: header, "Content-Type": "application/json"},
        )
        assert resp.status == 409
    finally:
        await other.close()
    assert (await _customer(pool, "c-1"))["tags"] == []  # type: ignore[index]


async def test_expired_memory_is_purged_while_old_signatures_stay_refused(
    pool: asyncpg.Pool[Any], post: Post, clock: Clock
) -> None:
    await post({"changes": [upsert("c-1", T1, name="Ann")]})
    assert (await _counts(pool))["webhook_seen"] == 1
    clock.now += 601  # past 2 × max_skew_s: the row may go, the timestamp check covers it
    status, _ = await post({"changes": [upsert("c-1", T2, name="Ann B")]}, t=int(clock.now))
    assert status == 200
    keys = [r["key"] for r in await pool.fetch("SELECT key FROM webhook_seen")]
    assert len(keys) == 1
    data = json.dumps({"changes": [upsert("c-1", T1, name="Ann")]}).encode()
    status, _ = await post(None, raw=data, header=sign(SECRET, data, NOW))
    assert status == 401


async def test_stale_updated_at_is_ignored(pool: asyncpg.Pool[Any], post: Post) -> None:
    status, reply = await post({"changes": [upsert("c-1", T2, name="Newer", tags=["vip"])]})
    assert reply["applied"] == 1
    status, reply = await post({"changes": [upsert("c-1", T1, name="Older", tags=[])]}, t=NOW + 1)
    assert status == 200
    assert reply["results"][0]["status"] == "stale"
    assert reply["ignored"] == 1
    customer = await _customer(pool, "c-1")
    assert customer is not None and customer["name"] == "Newer" and customer["tags"] == ["vip"]
    # the same change again (equal updated_at) is a no-op too
    status, reply = await post({"changes": [upsert("c-1", T2, name="Other", tags=[])]}, t=NOW + 2)
    assert reply["results"][0]["status"] == "stale"
    assert (await _customer(pool, "c-1"))["name"] == "Newer"  # type: ignore[index]


async def test_deleted_customer_is_not_resurrected_by_an_older_upsert(
    pool: asyncpg.Pool[Any], post: Post
) -> None:
    await post({"changes": [upsert("c-1", T1, name="Ann", phones=["+15551230001"])]})
    _, reply = await post(
        {"changes": [{"type": "customer.delete", "customer_id": "c-1", "updated_at": T3}]},
        t=NOW + 1,
    )
    assert reply["applied"] == 1
    assert await _customer(pool, "c-1") is None
    assert await pool.fetchval("SELECT count(*) FROM customer_phones") == 0
    _, reply = await post({"changes": [upsert("c-1", T2, name="Ann again")]}, t=NOW + 2)
    assert reply["results"][0]["status"] == "stale"
    assert await _customer(pool, "c-1") is None
    later = "2027-01-15T07:11:00Z"
    _, reply = await post({"changes": [upsert("c-1", later, name="Ann back")]}, t=NOW + 3)
    assert reply["applied"] == 1
    assert (await _customer(pool, "c-1"))["name"] == "Ann back"  # type: ignore[index]


async def test_later_tag_removal_wins_over_an_earlier_upsert_arriving_late(
    pool: asyncpg.Pool[Any], post: Post
) -> None:
    await post({"changes": [upsert("c-1", T1, name="Ann")]})
    _, reply = await post(
        {
            "changes": [
                {"type": "tag.remove", "customer_id": "c-1", "tag": "vip", "updated_at": T3},
                upsert("c-1", T2, name="Ann Lee", tags=["vip", "gold"]),
            ]
        },
        t=NOW + 1,
    )
    assert [r["status"] for r in reply["results"]] == ["applied", "applied"]
    customer = await _customer(pool, "c-1")
    assert customer is not None
    assert customer["name"] == "Ann Lee"
    assert customer["tags"] == ["gold"]  # vip: the later removal is kept


async def test_phone_and_tag_changes_apply_in_order(pool: asyncpg.Pool[Any], post: Post) -> None:
    await post({"changes": [upsert("c-1", T1, name="Ann", phones=["+15551230001"])]})
    _, reply = await post(
        {
            "changes": [
                {
                    "type": "phone.add",
                    "customer_id": "c-1",
                    "phone": "+8613800138000",
                    "updated_at": T2,
                },
                {
                    "type": "phone.remove",
                    "customer_id": "c-1",
                    "phone": "+15551230001",
                    "updated_at": T2,
                },
                {
                    "type": "tag.add",
                    "customer_id": "c-1",
                    "tag": "complaint-risk",
                    "updated_at": T2,
                },
                {
                    "type": "phone.add",
                    "customer_id": "c-1",
                    "phone": "+15551230001",
                    "updated_at": T1,
                },
            ]
        },
        t=NOW + 1,
    )
    assert [r["status"] for r in reply["results"]] == ["applied", "applied", "applied", "stale"]
    customer = await _customer(pool, "c-1")
    assert customer is not None
    assert customer["phones"] == ["+8613800138000"]
    assert customer["tags"] == ["complaint-risk"]
    actions = [r["action"] for r in await pool.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["customer.create", "phone.add", "phone.remove", "tag.add"]


async def test_phone_of_another_customer_is_rejected_naming_the_owner(
    pool: asyncpg.Pool[Any], post: Post
) -> None:
    await post({"changes": [upsert("c-1", T1, name="Ann", phones=["+15551230001"])]})
    _, reply = await post(
        {
            "changes": [
                upsert("c-2", T2, name="Bob", phones=["+15551230001"], tags=["x"]),
                upsert("c-3", T2, name="Cy", phones=["+15551230003"]),
                {
                    "type": "phone.add",
                    "customer_id": "c-3",
                    "phone": "+15551230001",
                    "updated_at": T3,
                },
                {"type": "tag.add", "customer_id": "nobody", "tag": "vip", "updated_at": T3},
                upsert("c-4", T2, name="Di", owner="no-such-agent"),
            ]
        },
        t=NOW + 1,
    )
    statuses = [r["status"] for r in reply["results"]]
    assert statuses == ["rejected", "applied", "rejected", "rejected", "rejected"]
    assert "c-1" in reply["results"][0]["reason"]
    assert "c-1" in reply["results"][2]["reason"]
    assert "nobody" in reply["results"][3]["reason"]
    assert "no-such-agent" in reply["results"][4]["reason"]
    assert await _customer(pool, "c-2") is None  # a rejected change leaves no trace
    assert await _customer(pool, "c-4") is None
    assert (await _customer(pool, "c-1"))["phones"] == ["+15551230001"]  # type: ignore[index]
    assert (await _customer(pool, "c-3"))["phones"] == ["+15551230003"]  # type: ignore[index]
    # the rejected change did not claim a version: a later correct upsert of c-2 applies
    _, reply = await post({"changes": [upsert("c-2", T2, name="Bob")]}, t=NOW + 2)
    assert reply["applied"] == 1


async def test_repeated_event_id_is_reported_duplicate(pool: asyncpg.Pool[Any], post: Post) -> None:
    change = {"id": "evt-7", **upsert("c-1", T1, name="Ann")}
    _, reply = await post({"changes": [change]})
    assert reply["applied"] == 1
    again = {"id": "evt-7", **upsert("c-1", T2, name="Changed")}
    _, reply = await post({"changes": [again]}, t=NOW + 1)
    assert reply["results"][0]["status"] == "duplicate"
    assert (await _customer(pool, "c-1"))["name"] == "Ann"  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "changes"),
        ({"changes": "x"}, "changes"),
        ({"changes": [1]}, "changes[0]"),
        ({"changes": [{"type": "customer.explode", "updated_at": T1}]}, "changes[0].type"),
        ({"changes": [upsert("c-1", "yesterday", name="A")]}, "changes[0].updated_at"),
        ({"changes": [upsert("c-1", "2027-01-15T07:00:00", name="A")]}, "changes[0].updated_at"),
        ({"changes": [upsert("c-1", "2027-01-16T07:00:00Z", name="A")]}, "changes[0].updated_at"),
        ({"changes": [upsert("c-1", True, name="A")]}, "changes[0].updated_at"),
        ({"changes": [upsert("c-1", T1)]}, "changes[0].customer.name"),
        ({"changes": [upsert("c-1", T1, name=7)]}, "changes[0].customer.name"),
        ({"changes": [upsert("c-1", T1, name="A\x00B")]}, "changes[0].customer.name"),
        ({"changes": [upsert("c-1", T1, name="A\r\nB")]}, "changes[0].customer.name"),
        ({"changes": [upsert("c-1", T1, name="A" * 301)]}, "changes[0].customer.name"),
        ({"changes": [upsert("", T1, name="A")]}, "changes[0].customer.id"),
        ({"changes": [upsert("c-1", T1, name="A", phones="+15551230001")]},
         "changes[0].customer.phones"),
        ({"changes": [upsert("c-1", T1, name="A", phones=["call me"])]},
         "changes[0].customer.phones[0]"),
        ({"changes": [upsert("c-1", T1, name="A", tags=["<b>"])]}, "changes[0].customer.tags[0]"),
        ({"changes": [upsert("c-1", T1, name="A", attributes=[1])]},
         "changes[0].customer.attributes"),
        ({"changes": [upsert("c-1", T1, name="A", attributes={"x": "a\x00"})]},
         "changes[0].customer.attributes.x"),
        ({"changes": [upsert("c-1", T1, name="A", owner="a b")]}, "changes[0].customer.owner"),
        ({"changes": [{"type": "tag.add", "customer_id": "c-1", "updated_at": T1}]},
         "changes[0].tag"),
        ({"changes": [{"type": "phone.add", "customer_id": "c-1", "updated_at": T1}]},
         "changes[0].phone"),
        ({"changes": [upsert("c-1", T1, name="A"),
                      {"type": "tag.add", "customer_id": "c-1", "tag": "", "updated_at": T1}]},
         "changes[1].tag"),
    ],
)  # fmt: skip
async def test_malformed_body_is_refused_naming_the_field_and_changes_nothing(
    pool: asyncpg.Pool[Any], post: Post, body: Any, field: str
) -> None:
    status, reply = await post(body)
    assert status == 400, reply
    assert reply["error"] == "invalid_field"
    assert reply["field"] == field
    assert field in reply["reason"]
    counts = await _counts(pool)
    assert counts["customers"] == 0 and counts["webhook_seen"] == 0


@pytest.mark.parametrize(
    "raw", [b"not json", b"\xff\xfe{}", b"[1, 2]", b'{"changes": [NaN]}', b"[" * 100_000]
)
async def test_body_that_is_not_a_json_object_is_refused(
    pool: asyncpg.Pool[Any], post: Post, raw: bytes
) -> None:
    status, reply = await post(None, raw=raw)
    assert status == 400
    assert reply["error"] == "invalid_json" and reply["field"] == "body"


async def test_oversized_body_is_refused(pool: asyncpg.Pool[Any], post: Post) -> None:
    big = {"changes": [upsert("c-1", T1, name="A", attributes={"x": "y" * (1024 * 1024)})]}
    status, reply = await post(big)
    assert status == 413
    assert reply["error"] == "body_too_large"
    assert (await _counts(pool))["customers"] == 0


async def test_oversized_chunked_body_without_length_is_cut_off(
    pool: asyncpg.Pool[Any], client: TestClient[Any, Any]
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b" " * 65536

    resp = await client.post(
        "/crm/webhook",
        data=chunks(),
        headers={SIGNATURE_HEADER: sign(SECRET, b"", NOW), "Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert (await resp.json())["error"] == "body_too_large"


async def test_hostile_text_is_stored_as_data(pool: asyncpg.Pool[Any], post: Post) -> None:
    name = "Robert'); DROP TABLE customers;-- <script>alert(1)</script> 张伟"
    cid = "c'; DELETE FROM agents; --"
    _, reply = await post(
        {
            "changes": [
                upsert(
                    cid, T1, name=name, attributes={"note": "<img src=x onerror=1>"}, tags=["a:b"]
                )
            ]
        }
    )
    assert reply["applied"] == 1
    customer = await _customer(pool, cid)
    assert customer is not None
    assert customer["name"] == name
    assert customer["attributes"] == {"note": "<img src=x onerror=1>"}
    # a tag on an id containing the version-key separator stays separate
    _, reply = await post(
        {"changes": [{"type": "tag.remove", "customer_id": cid, "tag": "a:b", "updated_at": T2}]},
        t=NOW + 1,
    )
    assert reply["applied"] == 1
    assert (await _customer(pool, cid))["tags"] == []  # type: ignore[index]


async def test_disabled_without_a_secret(pool: asyncpg.Pool[Any], clock: Clock) -> None:
    client = await _client(pool, "", clock)
    try:
        data = json.dumps({"changes": [upsert("c-1", T1, name="A")]}).encode()
        resp = await client.post(
            "/crm/webhook",
            data=data,
            headers={SIGNATURE_HEADER: sign("", data, NOW), "Content-Type": "application/json"},
        )
        assert resp.status == 503
        body = await resp.json()
        assert body["error"] == "unavailable" and "[webhook] secret" in body["reason"]
    finally:
        await client.close()
    assert (await _counts(pool))["customers"] == 0


async def test_wrong_method_and_unknown_path_answer_json(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/crm/webhook")
    assert resp.status == 405
    body = await resp.json()
    assert body["error"] == "method_not_allowed"
    assert resp.headers["Allow"] == "POST"
    resp = await client.post("/crm/nothing-here")
    assert resp.status == 404
    assert (await resp.json())["error"] == "not_found"


async def test_tag_added_by_the_crm_routes_the_next_call_to_another_queue(
    pool: asyncpg.Pool[Any], post: Post
) -> None:
    await load_trace_crm(pool)
    async with running_router(pool) as router:
        before = await router.route("+15551230002")  # Bob Li: no tags
        assert (before.queue, before.rule) == ("support", "default")
        _, reply = await post(
            {"changes": [{"type": "tag.add", "customer_id": BOB, "tag": "vip", "updated_at": T1}]}
        )
        assert reply["applied"] == 1
        after = await router.until("+15551230002", "senior")
        assert after.rule == "vip" and after.customer is not None and after.customer.id == BOB
        # a stale removal (older than the add) does not take the tag away again
        _, reply = await post(
            {"changes": [{"type": "tag.remove", "customer_id": BOB, "tag": "vip",
                          "updated_at": "2027-01-15T06:00:00Z"}]},
            t=NOW + 1,
        )  # fmt: skip
        assert reply["results"][0]["status"] == "stale"
        assert (await router.route("+15551230002")).queue == "senior"
        # a new phone for Alice routes that number as Alice (vip → senior) at once
        _, reply = await post(
            {"changes": [{"type": "phone.add", "customer_id": ALICE, "phone": "+15551239999",
                          "updated_at": T2}]},
            t=NOW + 2,
        )  # fmt: skip
        assert reply["applied"] == 1
        decision = await router.until("+15551239999", "senior")
        assert decision.customer is not None and decision.customer.id == ALICE


async def test_same_delivery_sent_twice_at_once_applies_once(
    pool: asyncpg.Pool[Any], client: TestClient[Any, Any]
) -> None:
    data = json.dumps({"changes": [upsert("c-1", T1, name="Ann", tags=["vip"])]}).encode()
    headers = {SIGNATURE_HEADER: sign(SECRET, data, NOW), "Content-Type": "application/json"}

    async def send() -> int:
        resp = await client.post("/crm/webhook", data=data, headers=headers)
        await resp.read()
        return resp.status

    statuses = await asyncio.gather(*(send() for _ in range(5)))
    assert sorted(statuses) == [200, 409, 409, 409, 409]
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 1


async def test_outcomes_are_counted_in_metrics(post: Post) -> None:
    from prometheus_client import REGISTRY

    def value(name: str, labels: dict[str, str]) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    accepted = value("crm_bridge_webhook_deliveries_total", {"outcome": "accepted"})
    refused = value("crm_bridge_webhook_deliveries_total", {"outcome": "unauthorized"})
    stale = value("crm_bridge_webhook_changes_total", {"status": "stale"})
    await post({"changes": [upsert("c-1", T2, name="A"), upsert("c-1", T1, name="B")]})
    await post({"changes": []}, secret="wrong")
    assert value("crm_bridge_webhook_deliveries_total", {"outcome": "accepted"}) == accepted + 1
    assert value("crm_bridge_webhook_deliveries_total", {"outcome": "unauthorized"}) == refused + 1
    assert value("crm_bridge_webhook_changes_total", {"status": "stale"}) == stale + 1
