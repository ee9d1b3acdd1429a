"""The call records in the admin API (`bridge.web.admin_api`; admins only).

GET /api/calls?since=&until=&agent=&queue=&outcome=&customer=&direction=&limit=&cursor=
                        finished calls, newest first: {"calls", "next"}
GET /api/calls/{call_id}    the `call_records` row
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web

from bridge.errors import NotFound
from bridge.records import query as call_query
from bridge.records.store import RECORD_FIELDS
from bridge.web.errors import invalid
from bridge.web.params import (
    AGENT_ID,
    PLAIN,
    limit_param,
    only_params,
    plain_param,
    time_param,
)

__all__ = ["setup_calls_api"]

_POOL = web.AppKey("bridge_calls_api_pool", asyncpg.Pool)


def _pool(request: web.Request) -> asyncpg.Pool[Any]:
    return request.config_dict[_POOL]


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


async def get_call(request: web.Request) -> web.Response:
    call_id = request.match_info["call_id"]
    row = await _pool(request).fetchrow(
        f"SELECT {', '.join(RECORD_FIELDS)} FROM call_records WHERE call_id = $1", call_id
    )
    if row is None:
        raise NotFound(f"no call record {call_id[:150]!r}")
    record = {k: _json_value(row[k]) for k in RECORD_FIELDS}
    record["inferred"] = list(record["inferred"] or [])
    return web.json_response(record)


_CALL_PARAMS = frozenset(
    {"since", "until", "agent", "queue", "outcome", "customer", "direction", "limit", "cursor"}
)
_QUEUE = re.compile(r"[A-Za-z0-9_.-]{1,80}")


async def list_calls(request: web.Request) -> web.Response:
    """`GET /api/calls`: finished call records, newest first, filtered, in keyset pages."""
    query = request.query
    only_params(query, _CALL_PARAMS)
    limit = limit_param(query, 500)
    cursor = None
    if "cursor" in query:
        try:
            cursor = call_query.CallCursor.decode(query["cursor"])
        except ValueError as exc:
            raise invalid("cursor", "not a cursor this API gave (use the `next` value)") from exc
    since, until = time_param(query, "since"), time_param(query, "until")
    if since is not None and until is not None and since >= until:
        raise invalid("until", "must be later than since")
    for key, allowed in (("outcome", call_query.OUTCOMES), ("direction", call_query.DIRECTIONS)):
        if key in query and query[key] not in allowed:
            raise invalid(key, " or ".join(allowed))
    where = call_query.CallFilter(
        since=since,
        until=until,
        agent=plain_param(query, "agent", AGENT_ID),
        queue=plain_param(query, "queue", _QUEUE),
        outcome=query.get("outcome"),
        customer=plain_param(query, "customer", PLAIN),
        direction=query.get("direction"),
    )
    rows, after = await call_query.list_calls(
        _pool(request), RECORD_FIELDS, where, limit=limit, cursor=cursor
    )
    calls = []
    for row in rows:
        record = {k: _json_value(v) for k, v in row.items()}
        record["inferred"] = list(record["inferred"] or [])
        calls.append(record)
    return web.json_response({"calls": calls, "next": after.encode() if after else None})


def setup_calls_api(api: web.Application, pool: asyncpg.Pool[Any]) -> None:
    """Mount the call record routes on the admin API."""
    api[_POOL] = pool
    api.router.add_get("/calls", list_calls)
    api.router.add_get("/calls/{call_id}", get_call)
