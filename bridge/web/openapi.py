"""`GET /api/openapi.json`: the admin API described as OpenAPI 3.1.

Written by hand next to the routes (no framework generates it); a test checks that every
route mounted under /api/ is described here and nothing else is, so the two cannot drift.
"""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_ERROR = {"$ref": "#/components/schemas/Error"}
_ANY = {"type": "object", "additionalProperties": True}


def _answer(description: str, schema: Any = _ANY) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "a parameter or field is malformed (`field` names it)",
        401: "no or wrong bearer token",
        403: "the token's agent is not an admin",
        404: "no such item",
        409: "conflicts with the current state",
        429: "too many requests; wait `Retry-After` seconds",
        503: "the database is unavailable; retry",
    }
    return {str(c): _answer(reasons[c], _ERROR) for c in (401, 403, *codes, 503)}


def _op(summary: str, ok: str = "200", *, body: bool = False, errors: tuple[int, ...] = ()):
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {ok: _answer(summary), **_errors(*errors)},
    }
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ANY}}}
    return op


def _param(name: str, description: str, schema: dict[str, Any], where: str = "query"):
    return {"name": name, "in": where, "required": where == "path", "description": description,
            "schema": schema}  # fmt: skip


_TEXT = {"type": "string"}

_AUDIT_PARAMS = [
    _param("customer", "only entries about this customer id (card views; changes to it)", _TEXT),
    _param("agent", "only card views by this agent, and changes made by it", _TEXT),
    _param("call", "only entries about this call id (card views on it; amendments)", _TEXT),
    _param(
        "since",
        "ISO-8601 time, inclusive (no zone: UTC)",
        {"type": "string", "format": "date-time"},
    ),
    _param(
        "until",
        "ISO-8601 time, exclusive (no zone: UTC)",
        {"type": "string", "format": "date-time"},
    ),
    _param("kind", "one kind of entry only", {"type": "string", "enum": ["card_view", "change"]}),
    _param("target_type", "changes only: the changed thing's type (rule, agent, ...)", _TEXT),
    _param("target_id", "changes only: the changed thing's id", _TEXT),
    _param(
        "limit", "page size", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    ),
    _param("cursor", "the `next` value of the previous page", _TEXT),
]

_TIME = {"type": "string", "format": "date-time"}

_CUSTOMER_PARAMS = [
    _param("phone", "the customer with this phone (normalised to E.164); 0 or 1 result", _TEXT),
    _param(
        "q",
        "name contains it, id starts with it (case-insensitive), an attribute equals it, or"
        " it is one of the customer's phones",
        _TEXT,
    ),
    _param("after", "keyset paging: the `next` id of the previous page", _TEXT),
    _param("limit", "page size", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}),
]

_CALL_PARAMS = [
    _param("since", "calls started at or after (ISO-8601; no zone: UTC)", _TIME),
    _param("until", "calls started before (ISO-8601; no zone: UTC)", _TIME),
    _param("agent", "calls this agent talked on", _TEXT),
    _param("queue", "calls routed to this queue", _TEXT),
    _param(
        "outcome",
        "one outcome",
        {"type": "string", "enum": ["answered", "abandoned", "unanswered"]},
    ),
    _param("customer", "calls of this customer id", _TEXT),
    _param("direction", "inbound or outbound", {"type": "string", "enum": ["inbound", "outbound"]}),
    _param("limit", "page size", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}),
    _param("cursor", "the `next` value of the previous page", _TEXT),
]

_AUDIT_ENTRY = {
    "oneOf": [
        {
            "type": "object",
            "description": "a customer card delivered in a screen-pop",
            "properties": {
                "kind": {"const": "card_view"},
                "id": {"type": "integer"},
                "at": {"type": "string", "format": "date-time"},
                "agent": _TEXT,
                "customer": _TEXT,
                "call": _TEXT,
                "sections": {"type": "array", "items": _TEXT},
            },
        },
        {
            "type": "object",
            "description": "a change, with the state before and after",
            "properties": {
                "kind": {"const": "change"},
                "id": {"type": "integer"},
                "at": {"type": "string", "format": "date-time"},
                "actor": _TEXT,
                "action": _TEXT,
                "target_type": _TEXT,
                "target_id": _TEXT,
                "before": {},
                "after": {},
            },
        },
    ]
}


def openapi_document() -> dict[str, Any]:
    name = _param("name", "rule name", _TEXT, "path")
    aid = _param("id", "agent id", _TEXT, "path")
    cid = _param("id", "customer id", _TEXT, "path")
    call = _param("call_id", "the call's Linkedid", _TEXT, "path")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "asterisk-crm-bridge admin API",
            "version": "1",
            "description": "Every request needs `Authorization: Bearer <token>` of an active"
            " admin agent. Errors are JSON: status, error, reason, and field when one is to"
            " blame. Every change writes an audit entry.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["status", "error", "reason"],
                    "properties": {
                        "status": {"type": "integer"},
                        "error": _TEXT,
                        "reason": _TEXT,
                        "field": _TEXT,
                    },
                }
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/openapi.json": {"get": _op("this document")},
            "/api/rules": {
                "get": _op("routing rules in position order"),
                "post": _op("create a rule", "201", body=True, errors=(400, 409)),
            },
            "/api/rules/{name}": {
                "parameters": [name],
                "get": _op("one rule", errors=(404,)),
                "patch": _op("change some fields of a rule", body=True, errors=(400, 404)),
                "put": _op("replace a rule's conditions", body=True, errors=(400, 404)),
                "delete": _op("delete a rule", errors=(404,)),
            },
            "/api/agents": {
                "get": _op("agents: id, name, role, device, active, pbx (never tokens)"),
                "post": _op(
                    "create an agent {id, name, role?, device?, pbx?}; its token is shown once;"
                    " pbx: a configured [[pbx]] name (default the first; '' with one PBX)",
                    "201",
                    body=True,
                    errors=(400, 409),
                ),
            },
            "/api/agents/{id}": {
                "parameters": [aid],
                "get": _op("one agent", errors=(404,)),
                "patch": _op(
                    "change an agent {name?, role?, device?, active?, pbx?}; 409 when the"
                    " device is another agent's on the same PBX",
                    body=True,
                    errors=(400, 404, 409),
                ),
                "delete": _op("deactivate an agent", errors=(404, 409)),
            },
            "/api/agents/{id}/token": {
                "parameters": [aid],
                "post": _op("a fresh token; the old one stops working", errors=(404,)),
            },
            "/api/customers": {
                "get": {
                    **_op("find by phone, search with q, or keyset pages", errors=(400,)),
                    "parameters": _CUSTOMER_PARAMS,
                },
                "post": _op("create a customer", "201", body=True, errors=(400, 409)),
            },
            "/api/customers/{id}": {
                "parameters": [cid],
                "get": _op("one customer", errors=(404,)),
                "put": _op("create or replace a customer", body=True, errors=(400, 409)),
                "patch": _op("change parts of a customer", body=True, errors=(400, 404, 409)),
                "delete": _op("delete a customer", errors=(404,)),
            },
            "/api/calls": {
                "get": {
                    **_op("finished call records, newest first", errors=(400,)),
                    "description": "Filters combine with AND; unknown or repeated parameters"
                    " are 400. Keyset pages: pass `next` back as `cursor` (null: last page).",
                    "parameters": _CALL_PARAMS,
                }
            },
            "/api/calls/{call_id}": {
                "parameters": [call],
                "get": _op("one call record", errors=(404,)),
            },
            "/api/queues": {
                "get": _op(
                    "the wallboard's figures per queue (supervisors and admins): waiting,"
                    " longest wait, agents by state (available, ringing, talking, wrapup, paused;"
                    " each member with its wrap-up seconds), answered and abandoned today, service"
                    " level, the calls in progress and each member agent",
                    errors=(503,),
                ),
            },
            "/api/dial": {
                "post": _op(
                    "click-to-call: ring the agent's own device, then dial the number"
                    " (body {agent, number} or {agent, callback_of}); 202 with call_id",
                    "202",
                    body=True,
                    errors=(400, 404, 429),
                ),
            },
            "/api/audit": {
                "get": {
                    "summary": "the audit trail, newest first: changes and card views",
                    "description": "Who changed what, and who saw which customer's data"
                    " (one card_view per customer card delivered in a screen-pop). Keyset"
                    " pages: pass `next` back as `cursor`; `next` is null on the last page."
                    " Unknown or repeated parameters are 400.",
                    "parameters": _AUDIT_PARAMS,
                    "responses": {
                        "200": _answer(
                            "one page",
                            {
                                "type": "object",
                                "properties": {
                                    "entries": {"type": "array", "items": _AUDIT_ENTRY},
                                    "next": {"type": ["string", "null"]},
                                },
                            },
                        ),
                        **_errors(400),
                    },
                }
            },
        },
    }
