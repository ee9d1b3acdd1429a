"""JSON errors for the HTTP APIs, and strict reading of JSON request bodies.

Every error an API client sees has the same shape, never an HTML page:

    {"status": 400, "error": "invalid_field", "reason": "name: must be text", "field": "name"}

`error` is a stable id clients may switch on:

    status  error                    when
    400     invalid_json             body is not UTF-8 JSON, or not an object
    400     invalid_field            a field is missing, of the wrong type or out of range
    401     unauthorized             missing or wrong bearer token / webhook signature
    403     forbidden                the token is valid but its agent may not do this
    404     not_found                no such route or no such object
    405     method_not_allowed       the route exists, the method does not
    409     conflict                 e.g. a phone that belongs to another customer
    409     replayed                 a webhook delivery seen before
    413     body_too_large           body over the endpoint's limit
    415     unsupported_media_type   body is not `application/json`
    500     internal_error           a bug; details are logged, not returned
    503     unavailable              database down, or the feature is not configured

Handlers raise `ApiError` (or one of the bridge's own errors, mapped by `error_middleware`);
the middleware turns aiohttp's own HTTP exceptions into the same shape.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bridge.errors import (
    AuthError,
    CrmUnavailable,
    DuplicatePhone,
    NotFound,
    ValidationError,
)

log = logging.getLogger(__name__)

DEFAULT_BODY_LIMIT = 64 * 1024

_STATUS_IDS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    411: "length_required",
    413: "body_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    431: "headers_too_large",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error answered to the client as JSON."""

    def __init__(
        self,
        status: int,
        error: str,
        reason: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{status} {error}: {reason}")
        self.status = status
        self.error = error
        self.reason = reason
        self.field = field
        self.headers = headers or {}
        self.extra = extra


def invalid(field: str, reason: str) -> ApiError:
    return ApiError(400, "invalid_field", f"{field}: {reason}", field=field)


def json_error(
    status: int,
    error: str,
    reason: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    body: dict[str, Any] = {"status": status, "error": error, "reason": reason}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return web.json_response(body, status=status, headers=headers)


def from_exception(exc: BaseException) -> ApiError | None:
    """The ApiError for one of the bridge's own errors, or None if it is not one we map."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, DuplicatePhone):
        return ApiError(
            409, "conflict", str(exc), field="phones", phone=exc.phone, owner=exc.owner_id
        )
    if isinstance(exc, ValidationError):
        return ApiError(400, "invalid_field", str(exc), field=exc.field)
    if isinstance(exc, NotFound):
        return ApiError(404, "not_found", str(exc) or "not found")
    if isinstance(exc, AuthError):
        return ApiError(401, "unauthorized", str(exc) or "missing or wrong credentials")
    if isinstance(exc, CrmUnavailable):
        return ApiError(503, "unavailable", "the database is not reachable; retry later")
    return None


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    status = exc.status
    error = _STATUS_IDS.get(status, "bad_request" if status < 500 else "internal_error")
    reason = exc.reason or error
    headers: dict[str, str] = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = sorted(exc.allowed_methods)
        headers["Allow"] = ",".join(allowed)
        reason = f"{exc.method} is not allowed here; use {', '.join(allowed) or 'nothing'}"
    elif status == 404:
        reason = "no such route"
    elif status == 413:
        reason = "request body too large"
    return json_error(status, error, reason, headers=headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure below this point as a JSON error."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and other non-errors pass through
        return _from_http_exception(exc)
    except Exception as exc:
        mapped = from_exception(exc)
        if mapped is None:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return json_error(500, "internal_error", "internal error; see the bridge's log")
        return json_error(
            mapped.status,
            mapped.error,
            mapped.reason,
            field=mapped.field,
            headers=mapped.headers,
            **mapped.extra,
        )


async def read_body(request: web.Request, *, limit: int = DEFAULT_BODY_LIMIT) -> bytes:
    """The raw body, refusing more than `limit` bytes before reading them all."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "body_too_large", f"request body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(min(65536, limit + 1 - size) or 1)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Strict JSON: UTF-8, an object at the top, no NaN/Infinity."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400, "invalid_json", f"body is not valid UTF-8 (byte {exc.start})", field="body"
        ) from exc

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not allowed")

    try:
        value = json.loads(text, parse_constant=no_constants)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"body is not JSON: {exc}", field="body") from exc
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_json", "body must be a JSON object", field="body")
    return value


async def read_json(request: web.Request, *, limit: int = DEFAULT_BODY_LIMIT) -> dict[str, Any]:
    """Content type, size and syntax checked; the JSON object of the body."""
    if request.content_type != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the body as application/json",
        )
    if request.charset not in (None, "utf-8", "UTF-8"):
        raise ApiError(415, "unsupported_media_type", "the body must be UTF-8")
    return parse_json_object(await read_body(request, limit=limit))
