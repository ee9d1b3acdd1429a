"""`GET /api/audit`: the audit trail, newest first (admins only), and how admin changes
write to it.

    GET /api/audit?customer=&agent=&call=&since=&until=&kind=&limit=&cursor=
        changes (`kind` change) and customer cards delivered in pops (`card_view`):
        {"entries": [...], "next": cursor}

Only admins read the audit trail, supervisors included in what it reports: it holds every
customer's before/after state and every colleague's views, which is compliance data, not
team management (supervisors have the wallboard). A compliance officer gets an admin token.

Every admin change writes one `audit_log` row (actor = the admin's agent id, before/after as
JSON) in the same transaction as the change: `audit_change(conn, request, ...)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg
from aiohttp import web

from bridge.crm import audit
from bridge.web.auth import admin_actor
from bridge.web.errors import invalid
from bridge.web.params import AGENT_ID, CALL_ID, PLAIN, plain_param, time_param

if TYPE_CHECKING:
    from bridge.crm.customers import Conn

__all__ = ["audit_change", "setup_audit_api"]

_POOL = web.AppKey("bridge_audit_api_pool", asyncpg.Pool)


def _pool(request: web.Request) -> asyncpg.Pool[Any]:
    return request.config_dict[_POOL]


_AUDIT_PARAMS = frozenset(
    {"customer", "agent", "call", "since", "until", "kind", "limit", "cursor", "target_type",
     "target_id"}
)  # fmt: skip


def _audit_filter(request: web.Request) -> tuple[audit.AuditFilter, int, audit.Cursor | None]:
    """Every query parameter checked: unknown, repeated or malformed ones are 400."""
    query = request.query
    for key in query:
        if key not in _AUDIT_PARAMS:
            raise invalid(
                key[:80], f"unknown parameter; allowed: {', '.join(sorted(_AUDIT_PARAMS))}"
            )
        if len(query.getall(key)) > 1:
            raise invalid(key, "given more than once")
    limit_text = query.get("limit", "100")
    if not limit_text.isascii() or not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
        raise invalid("limit", "an integer from 1 to 1000")
    kind = query.get("kind")
    if kind is not None and kind not in audit.KINDS:
        raise invalid("kind", "card_view or change")
    cursor = None
    if "cursor" in query:
        try:
            cursor = audit.Cursor.decode(query["cursor"])
        except ValueError as exc:
            raise invalid("cursor", "not a cursor this API gave (use the `next` value)") from exc
    since, until = time_param(query, "since"), time_param(query, "until")
    if since is not None and until is not None and since >= until:
        raise invalid("until", "must be later than since")
    where = audit.AuditFilter(
        customer=plain_param(query, "customer", PLAIN),
        agent=plain_param(query, "agent", AGENT_ID),
        call=plain_param(query, "call", CALL_ID),
        since=since,
        until=until,
        kind=kind,  # type: ignore[arg-type]  # checked against audit.KINDS above
        target_type=plain_param(query, "target_type", PLAIN),
        target_id=plain_param(query, "target_id", PLAIN),
    )
    return where, int(limit_text), cursor


async def list_audit(request: web.Request) -> web.Response:
    where, limit, cursor = _audit_filter(request)
    entries, after = await audit.search(_pool(request), where, limit=limit, cursor=cursor)
    return web.json_response({"entries": entries, "next": after.encode() if after else None})


async def audit_change(
    conn: Conn,
    request: web.Request,
    action: str,
    target_type: str,
    target_id: str,
    before: Any,
    after: Any,
) -> None:
    """One `audit_log` row for an admin's change, in the change's transaction."""
    await audit.record(
        conn,
        actor=admin_actor(request),
        action=action,
        target_type=target_type,
        target_id=target_id,
        before=before,
        after=after,
    )


def setup_audit_api(api: web.Application, pool: asyncpg.Pool[Any]) -> None:
    """Mount `GET /audit` on the admin API (`bridge.web.admin_api`)."""
    api[_POOL] = pool
    api.router.add_get("/audit", list_audit)
