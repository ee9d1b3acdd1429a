"""`POST /crm/webhook`: the CRM pushes customer changes to the bridge.

Request
-------
Header `X-CRM-Signature: t=<unix seconds>,v1=<hex>` where `<hex>` is
HMAC-SHA256(key = [webhook] secret, message = `<t>.` + the raw body bytes). Several `v1=`
entries may be sent (secret rotation); one matching is enough. Body (UTF-8 JSON, ≤ 1 MiB):

    {"changes": [
      {"id": "evt-1", "type": "customer.upsert", "updated_at": "2026-11-23T20:00:00Z",
       "customer": {"id": "c-42", "name": "Alice Chen", "phones": ["+15551230001"],
                    "tags": ["vip"], "attributes": {"lifetime_value": 12000}, "owner": "1001"}},
      {"type": "customer.delete", "updated_at": ..., "customer_id": "c-42"},
      {"type": "phone.add", "updated_at": ..., "customer_id": "c-42", "phone": "+1 555 0100"},
      {"type": "phone.remove", "updated_at": ..., "customer_id": "c-42", "phone": "+15551230009"},
      {"type": "tag.add",      "updated_at": ..., "customer_id": "c-42", "tag": "vip"},
      {"type": "tag.remove",   "updated_at": ..., "customer_id": "c-42", "tag": "vip"}]}

`updated_at` is ISO 8601 with a time zone, or Unix seconds. `id` (optional, ≤ 200 chars) is
the CRM's event id. In `customer.upsert` only `id` and `name` are required; `phones` and
`tags`, when present, are the complete new sets; `attributes`, when present, replaces them;
`owner` (an agent id, or null for none), when present, replaces the owner. A key that is
absent leaves that part unchanged.

Checks, in order — a failed check changes nothing:
  1. [webhook] secret empty → 503 `unavailable` (the webhook is disabled).
  2. Body over 1 MiB → 413. Missing/garbled header or no matching signature → 401.
  3. `t` more than [webhook] max_skew_s away from our clock → 401 (too old or in the future).
  4. Body not valid JSON of the shape above → 400 naming the field (e.g. `changes[2].tag`).
  5. The same signature accepted before → 409 `replayed`. Accepted signatures (and event
     ids) are kept in table `webhook_seen` for 2 × max_skew_s, longer than a signature can
     pass check 3, so a restart does not reopen the window.
Then every change is applied in ONE transaction together with the replay memory and the
audit rows (actor `crm-webhook`); an error there rolls back everything (500, and a retry
with a fresh signature is safe).

Conflicts: last writer wins by the CRM's `updated_at`
-----------------------------------------------------
The bridge keeps, per fact, the newest `updated_at` it applied (table `crm_versions`):

  * the customer record `customer:<id>` — its existence, name, attributes, owner;
  * each phone number `phone:<e164>` — which customer it belongs to (if any);
  * each tag membership `tag:<customer id>:<tag>`.

A change is applied to a fact only when its `updated_at` is STRICTLY later than the one
kept for that fact; otherwise that part of the change is ignored (`stale`). Equal times
count as already applied, so a redelivered change is a no-op. Deleting a customer keeps its
`customer:` version (a tombstone): an older upsert arriving late does not bring it back,
but a newer one re-creates it. A `customer.upsert` first claims `customer:<id>` (if that is
stale, nothing of it applies), then, when it lists phones or tags, claims each phone and
tag it adds or removes at the same `updated_at` — so a `tag.remove` stamped later than the
upsert keeps the tag removed even if the upsert arrives after it. `updated_at` more than
max_skew_s in the future is refused (400): it would block every later change.
Edits made through the admin API do not take part: they are local, and the next applied CRM
change to the same fact overwrites them.

Per-change results: `applied`, `stale` (an older change), `duplicate` (its event id was seen
within the window), or `rejected` with a reason (a phone that belongs to another customer,
an unknown owner agent, a phone/tag change for a customer the bridge does not have). A
rejected change leaves no trace; the others still apply. Answer: 200 with
`{"results": [{"index", "id", "type", "status", "reason"?}], "applied", "ignored", "rejected"}`.

Applied changes reach routing on the next call: the customer tables' NOTIFY triggers
(sql/010) invalidate the caller-lookup cache.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import asyncpg
from aiohttp import web
from prometheus_client import Counter

from bridge.clock import UnixClock
from bridge.config import Config
from bridge.crm import audit, customers
from bridge.db.errors import DB_ERRORS
from bridge.errors import CrmUnavailable, DuplicatePhone, ValidationError
from bridge.web.errors import ApiError, error_middleware, invalid, parse_json_object, read_body

if TYPE_CHECKING:
    from bridge.crm.customers import Conn

log = logging.getLogger(__name__)

DELIVERIES = Counter(
    "crm_bridge_webhook_deliveries_total",
    "CRM webhook deliveries by outcome (accepted, unauthorized, replayed, invalid)",
    ["outcome"],
)
CHANGES = Counter(
    "crm_bridge_webhook_changes_total",
    "CRM webhook changes by result (applied, stale, duplicate, rejected)",
    ["status"],
)

SIGNATURE_HEADER = "X-CRM-Signature"
MAX_BODY = 1024 * 1024
MAX_CHANGES = 1000
MAX_EVENT_ID = 200
PATH = "/crm/webhook"

ChangeType = Literal[
    "customer.upsert", "customer.delete", "phone.add", "phone.remove", "tag.add", "tag.remove"
]
CHANGE_TYPES: tuple[str, ...] = (
    "customer.upsert",
    "customer.delete",
    "phone.add",
    "phone.remove",
    "tag.add",
    "tag.remove",
)


# --- signatures (pure) ------------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The `X-CRM-Signature` header value for `body` sent at `timestamp` (for CRMs and tests)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


@dataclass(frozen=True, slots=True)
class Signature:
    timestamp: int
    candidates: tuple[str, ...]  # lower-case hex digests from `v1=` entries


_HEX64 = re.compile(r"[0-9a-f]{64}")


def parse_signature(header: str | None) -> Signature:
    """`t=<unix>,v1=<hex>[,v1=<hex>...]` → Signature; ValueError if malformed."""
    if not header or len(header) > 1024:
        raise ValueError(f"missing or oversized {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise ValueError(f"{SIGNATURE_HEADER}: {part.strip()[:20]!r} is not key=value")
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                raise ValueError(f"{SIGNATURE_HEADER}: t must be one Unix time in seconds")
            if len(value) > 12:
                raise ValueError(f"{SIGNATURE_HEADER}: t out of range")
            timestamp = int(value)
        elif key == "v1":
            value = value.lower()
            if not _HEX64.fullmatch(value):
                raise ValueError(f"{SIGNATURE_HEADER}: v1 must be 64 hex digits")
            candidates.append(value)
        # other schemes (v0, v2, ...) are ignored, as they would be by a newer sender
    if timestamp is None or not candidates:
        raise ValueError(f"{SIGNATURE_HEADER} needs t=<unix> and v1=<hex>")
    return Signature(timestamp, tuple(candidates))


def verify(secret: str, body: bytes, sig: Signature) -> bool:
    """Constant-time check of every candidate (no early exit on a match or mismatch)."""
    expected = hmac.new(
        secret.encode(), f"{sig.timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    matched = False
    for candidate in sig.candidates:
        matched |= hmac.compare_digest(expected, candidate)
    return matched


# --- body parsing (pure) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    index: int
    type: str
    updated_at: datetime
    customer_id: str
    event_id: str | None = None
    customer: Mapping[str, Any] = field(default_factory=dict)  # validated upsert fields
    phone: str | None = None
    tag: str | None = None


def parse_time(value: Any, field_name: str, *, now: float, max_future_s: int) -> datetime:
    if isinstance(value, bool):
        raise ValidationError(field_name, "must be an ISO 8601 time or Unix seconds")
    if isinstance(value, (int, float)):
        if not 0 <= value < 1e11:
            raise ValidationError(field_name, "Unix time out of range")
        at = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str) and len(value) <= 40:
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError as exc:
            raise ValidationError(field_name, f"not an ISO 8601 time: {value!r}") from exc
        if at.tzinfo is None:
            raise ValidationError(field_name, "needs a time zone (e.g. Z or +08:00)")
    else:
        raise ValidationError(field_name, "must be an ISO 8601 time or Unix seconds")
    if at.timestamp() > now + max_future_s:
        raise ValidationError(field_name, "is in the future beyond [webhook] max_skew_s")
    return at.astimezone(UTC)


def parse_changes(
    body: Mapping[str, Any], *, region: str, now: float, max_future_s: int
) -> list[Change]:
    """Validate the whole body before anything is applied; ValidationError names the field."""
    raw = body.get("changes")
    if not isinstance(raw, list):
        raise ValidationError("changes", "must be a list of changes")
    if len(raw) > MAX_CHANGES:
        raise ValidationError("changes", f"more than {MAX_CHANGES} changes in one delivery")
    return [
        _parse_change(item, i, region=region, now=now, max_future_s=max_future_s)
        for i, item in enumerate(raw)
    ]


def _parse_change(item: Any, index: int, *, region: str, now: float, max_future_s: int) -> Change:
    where = f"changes[{index}]"
    if not isinstance(item, dict):
        raise ValidationError(where, "must be an object")
    kind = item.get("type")
    if kind not in CHANGE_TYPES:
        raise ValidationError(f"{where}.type", f"one of {', '.join(CHANGE_TYPES)}")
    event_id = item.get("id")
    if event_id is not None:
        event_id = customers.text_field(event_id, f"{where}.id", max_len=MAX_EVENT_ID)
    at = parse_time(
        item.get("updated_at"), f"{where}.updated_at", now=now, max_future_s=max_future_s
    )
    if kind == "customer.upsert":
        data = item.get("customer")
        if not isinstance(data, dict):
            raise ValidationError(f"{where}.customer", "must be an object")
        fields: dict[str, Any] = {
            "id": customers.customer_id(data.get("id"), f"{where}.customer.id"),
            "name": customers.customer_name(data.get("name"), f"{where}.customer.name"),
        }
        if "phones" in data:
            fields["phones"] = customers.phones(data["phones"], region, f"{where}.customer.phones")
        if "tags" in data:
            fields["tags"] = customers.tags(data["tags"], f"{where}.customer.tags")
        if "attributes" in data:
            fields["attributes"] = customers.attributes(
                data["attributes"], f"{where}.customer.attributes"
            )
        if "owner" in data:
            owner = data["owner"]
            fields["owner"] = (
                None
                if owner in (None, "")
                else customers.agent_id(owner, f"{where}.customer.owner")
            )
        return Change(index, kind, at, fields["id"], event_id, customer=fields)
    cid = customers.customer_id(item.get("customer_id"), f"{where}.customer_id")
    if kind in ("phone.add", "phone.remove"):
        e164 = customers.phone(item.get("phone"), region, f"{where}.phone")
        return Change(index, kind, at, cid, event_id, phone=e164)
    if kind in ("tag.add", "tag.remove"):
        return Change(
            index, kind, at, cid, event_id, tag=customers.tag(item.get("tag"), f"{where}.tag")
        )
    return Change(index, kind, at, cid, event_id)


# --- applying (one transaction) ---------------------------------------------------------


class _Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _key(*parts: str) -> str:
    """Unambiguous version key even when ids contain ':' (JSON list)."""
    return json.dumps(list(parts), ensure_ascii=False, separators=(",", ":"))


async def _claim(conn: Conn, key: str, at: datetime) -> bool:
    """Record `at` as the fact's version if strictly newer; True when the change may apply."""
    row = await conn.fetchval(
        "INSERT INTO crm_versions (key, updated_at) VALUES ($1, $2)"
        " ON CONFLICT (key) DO UPDATE SET updated_at = EXCLUDED.updated_at"
        " WHERE crm_versions.updated_at < EXCLUDED.updated_at RETURNING 1",
        key,
        at,
    )
    return row is not None


async def _apply(conn: Conn, change: Change) -> bool:
    """Apply one change; False when it is stale. Raises _Rejected or DuplicatePhone."""
    cid, at = change.customer_id, change.updated_at
    if change.type == "customer.upsert":
        return await _apply_upsert(conn, change)
    if change.type == "customer.delete":
        if not await _claim(conn, _key("customer", cid), at):
            return False
        before = await customers.lock(conn, cid)
        if before is None:
            return True  # already absent; the tombstone still orders later changes
        await customers.delete(conn, cid)
        await _audit(conn, "customer.delete", "customer", cid, customers.snapshot(before), None)
        return True
    before = await customers.lock(conn, cid)
    if change.type in ("phone.add", "phone.remove"):
        assert change.phone is not None
        if not await _claim(conn, _key("phone", change.phone), at):
            return False
        if before is None:
            if change.type == "phone.remove":
                return True
            raise _Rejected(f"no customer {cid!r}")
        if change.type == "phone.add":
            await customers.add_phone(conn, cid, change.phone)
        else:
            await customers.remove_phone(conn, cid, change.phone)
    else:
        assert change.tag is not None
        if not await _claim(conn, _key("tag", cid, change.tag), at):
            return False
        if before is None:
            if change.type == "tag.remove":
                return True
            raise _Rejected(f"no customer {cid!r}")
        if change.type == "tag.add":
            await customers.add_tag(conn, cid, change.tag)
        else:
            await customers.remove_tag(conn, cid, change.tag)
    await customers.touch(conn, cid)
    after = await customers.get(conn, cid)
    target = "phone" if change.phone else "tag"
    await _audit(
        conn, change.type, target, cid, customers.snapshot(before), customers.snapshot(after)
    )
    return True


async def _apply_upsert(conn: Conn, change: Change) -> bool:
    cid, at, data = change.customer_id, change.updated_at, change.customer
    if not await _claim(conn, _key("customer", cid), at):
        return False
    before = await customers.lock(conn, cid)
    await customers.upsert_row(conn, cid, data["name"], data.get("attributes"))
    if "owner" in data:
        try:
            await customers.set_owner(conn, cid, data["owner"])
        except ValidationError as exc:
            raise _Rejected(f"owner: {exc.reason}") from exc
    have_phones = set(before["phones"]) if before else set()
    if "phones" in data:
        wanted = data["phones"]
        for e164 in sorted(have_phones - set(wanted)):
            if await _claim(conn, _key("phone", e164), at):
                await customers.remove_phone(conn, cid, e164)
        for e164 in wanted:
            if await _claim(conn, _key("phone", e164), at) and e164 not in have_phones:
                await customers.add_phone(conn, cid, e164)
    have_tags = set(before["tags"]) if before else set()
    if "tags" in data:
        wanted_tags = set(data["tags"])
        for name in sorted(have_tags | wanted_tags):
            if await _claim(conn, _key("tag", cid, name), at):
                if name in wanted_tags:
                    await customers.add_tag(conn, cid, name)
                else:
                    await customers.remove_tag(conn, cid, name)
    after = await customers.get(conn, cid)
    action = "customer.update" if before else "customer.create"
    await _audit(
        conn, action, "customer", cid, customers.snapshot(before), customers.snapshot(after)
    )
    return True


async def _audit(
    conn: Conn,
    action: str,
    target_type: str,
    target_id: str,
    before: Any,
    after: Any,
) -> None:
    await audit.record(
        conn,
        actor=audit.WEBHOOK_ACTOR,
        action=action,
        target_type=target_type,
        target_id=target_id,
        before=before,
        after=after,
    )


async def apply_delivery(
    pool: asyncpg.Pool[Any],
    changes: list[Change],
    *,
    signature_key: str,
    now: datetime,
    keep_for: timedelta,
) -> list[dict[str, Any]]:
    """Remember the signature and apply every change, all in one transaction.

    Raises ApiError(409 replayed) when the signature was accepted before.
    """
    expires = now + keep_for
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "DELETE FROM webhook_seen WHERE key IN"
            " (SELECT key FROM webhook_seen WHERE expires_at < $1 LIMIT 1000)",
            now,
        )
        fresh = await conn.fetchval(
            "INSERT INTO webhook_seen (key, expires_at) VALUES ($1, $2)"
            " ON CONFLICT (key) DO NOTHING RETURNING 1",
            signature_key,
            expires,
        )
        if fresh is None:
            raise ApiError(409, "replayed", "this delivery was accepted before")
        results: list[dict[str, Any]] = []
        for change in changes:
            result: dict[str, Any] = {
                "index": change.index,
                "id": change.event_id,
                "type": change.type,
            }
            if change.event_id is not None:
                new_event = await conn.fetchval(
                    "INSERT INTO webhook_seen (key, expires_at) VALUES ($1, $2)"
                    " ON CONFLICT (key) DO NOTHING RETURNING 1",
                    "event:" + change.event_id,
                    expires,
                )
                if new_event is None:
                    results.append({**result, "status": "duplicate"})
                    continue
            try:
                async with conn.transaction():  # savepoint: a rejected change leaves no trace
                    applied = await _apply(conn, change)
            except _Rejected as exc:
                results.append({**result, "status": "rejected", "reason": exc.reason})
                continue
            except DuplicatePhone as exc:
                results.append({**result, "status": "rejected", "reason": str(exc)})
                continue
            results.append({**result, "status": "applied" if applied else "stale"})
        return results


# --- HTTP -------------------------------------------------------------------------------


@dataclass
class WebhookDeps:
    pool: asyncpg.Pool[Any]
    config: Config
    clock: UnixClock = time.time  # tests move it
    # Told the lag of each applied change (now - its updated_at): the monitor's change lag.
    on_change_lag: Callable[[float], None] | None = None


WEBHOOK_DEPS = web.AppKey("crm_webhook_deps", WebhookDeps)


async def handle_webhook(request: web.Request) -> web.Response:
    try:
        response = await _handle(request)
    except ApiError as exc:
        DELIVERIES.labels(
            {401: "unauthorized", 409: "replayed", 503: "disabled"}.get(exc.status, "invalid")
        ).inc()
        raise
    DELIVERIES.labels("accepted").inc()
    return response


async def _handle(request: web.Request) -> web.Response:
    deps = request.config_dict[WEBHOOK_DEPS]
    secret = deps.config.webhook.secret
    if not secret:
        raise ApiError(
            503, "unavailable", "the CRM webhook is disabled; set [webhook] secret to enable it"
        )
    raw = await read_body(request, limit=MAX_BODY)
    try:
        sig = parse_signature(request.headers.get(SIGNATURE_HEADER))
    except ValueError as exc:
        raise ApiError(401, "unauthorized", str(exc)) from exc
    if not verify(secret, raw, sig):
        raise ApiError(401, "unauthorized", f"{SIGNATURE_HEADER} does not match the body")
    now = deps.clock()
    skew = deps.config.webhook.max_skew_s
    if abs(now - sig.timestamp) > skew:
        raise ApiError(401, "unauthorized", f"signature time is more than {skew} s away from ours")
    body = parse_json_object(raw)
    try:
        changes = parse_changes(
            body, region=deps.config.pbx.default_region, now=now, max_future_s=skew
        )
    except ValidationError as exc:
        raise invalid(exc.field, exc.reason) from exc
    # The digest we computed is the one that matched; key on it (not on the sender's text).
    digest = hmac.new(secret.encode(), f"{sig.timestamp}.".encode() + raw, hashlib.sha256)
    try:
        results = await apply_delivery(
            deps.pool,
            changes,
            signature_key="sig:" + digest.hexdigest(),
            now=datetime.fromtimestamp(now, UTC),
            keep_for=timedelta(seconds=2 * skew),
        )
    except DB_ERRORS as exc:
        raise CrmUnavailable(str(exc)) from exc
    for result in results:
        CHANGES.labels(result["status"]).inc()
    if deps.on_change_lag is not None:
        applied = {r["index"] for r in results if r["status"] == "applied"}
        for change in changes:
            if change.index in applied:
                deps.on_change_lag(now - change.updated_at.timestamp())
    counts = {s: sum(1 for r in results if r["status"] == s) for s in ("applied", "rejected")}
    log.info(
        "crm webhook: %d changes, %d applied, %d rejected",
        len(results),
        counts["applied"],
        counts["rejected"],
    )
    return web.json_response(
        {
            "results": results,
            "applied": counts["applied"],
            "rejected": counts["rejected"],
            "ignored": len(results) - counts["applied"] - counts["rejected"],
        }
    )


def setup_webhook_routes(app: web.Application, deps: WebhookDeps) -> web.Application:
    """Mount `POST /crm/webhook` on `app` (a sub-application, so its errors are JSON)."""
    sub = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY)
    sub[WEBHOOK_DEPS] = deps
    sub.router.add_post("/webhook", handle_webhook)
    app.add_subapp("/crm/", sub)
    return sub
