"""Strict checks of admin API query parameters and body fields, shared by the features.

A typo must not widen a search or be silently ignored: unknown or repeated parameters and
unknown fields are 400 `invalid_field`, naming the culprit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bridge.errors import ValidationError
from bridge.web.errors import ApiError, invalid

__all__ = [
    "AGENT_ID",
    "CALL_ID",
    "PLAIN",
    "check_fields",
    "limit_param",
    "only_params",
    "plain_param",
    "time_param",
    "validated",
]

AGENT_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
CALL_ID = re.compile(r"[A-Za-z0-9_.:-]{1,150}")
PLAIN = re.compile(r"[^\x00-\x1f\x7f]{1,200}")


def check_fields(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for key in body:
        if key not in allowed:
            raise invalid(key[:80], f"unknown field; allowed: {', '.join(sorted(allowed))}")


def validated(exc: ValidationError) -> ApiError:
    return invalid(exc.field, exc.reason)


def only_params(query: Mapping[str, str], allowed: frozenset[str]) -> None:
    """Unknown or repeated query parameters are 400: a typo must not widen a search."""
    for key in query:
        if key not in allowed:
            raise invalid(key[:80], f"unknown parameter; allowed: {', '.join(sorted(allowed))}")
        if len(query.getall(key)) > 1:  # type: ignore[attr-defined]
            raise invalid(key, "given more than once")


def limit_param(query: Mapping[str, str], top: int) -> int:
    text = query.get("limit", "100")
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= top:
        raise invalid("limit", f"an integer from 1 to {top}")
    return int(text)


def plain_param(query: Mapping[str, str], key: str, pattern: re.Pattern[str]) -> str | None:
    value = query.get(key)
    if value is None:
        return None
    if not pattern.fullmatch(value):
        raise invalid(key, "not a valid id")
    return value


def time_param(query: Mapping[str, str], key: str) -> datetime | None:
    value = query.get(key)
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value) if len(value) <= 40 else None
    except ValueError:
        when = None
    if when is None:
        raise invalid(key, "an ISO-8601 time, e.g. 2026-11-01T00:00:00Z (write + as %2B)")
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
