"""Pure helpers of the REST connector: URL templates, the auth header, field mapping.

`[crm] field_map` maps *our* field names to *theirs*. Posting a record renames our keys to
theirs; reading a lookup answer renames their keys back to ours. Our customer fields are
`id`, `name`, `tags`, `owner`; anything else the CRM returns becomes an attribute.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from bridge.errors import ConfigError, CrmError
from bridge.models import Customer

__all__ = ["customer_from_payload", "expand", "map_record", "parse_auth_header"]

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")  # RFC 9110 field-name
CUSTOMER_FIELDS = ("id", "name", "tags", "owner")
MAX_TAGS = 100


def expand(template: str, key: str, value: str) -> str:
    """Put `value`, percent-encoded (so `+`, `/`, `?`, `#` stay data), into `{key}`."""
    return template.replace("{" + key + "}", quote(value, safe=""))


def parse_auth_header(raw: str) -> tuple[str, str] | None:
    """`"Name: value"` -> (name, value); None if empty. Never echoes the value in errors."""
    if not raw:
        return None
    name, sep, value = raw.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not _TOKEN.match(name) or not value:
        raise ConfigError("crm.auth_header", "expected 'Header-Name: value'")
    if any(c in value for c in "\r\n\x00"):
        raise ConfigError("crm.auth_header", "the value must not contain CR, LF or NUL")
    return name, value


def map_record(record: Mapping[str, Any], field_map: Mapping[str, str]) -> dict[str, Any]:
    return {field_map.get(key, key): value for key, value in record.items()}


def _pick(payload: Any) -> Mapping[str, Any] | None:
    """A lookup answer may be the customer, a list of customers, or wrap them."""
    if payload is None:
        return None
    if isinstance(payload, list):
        return _pick(payload[0]) if payload else None
    if isinstance(payload, dict):
        for wrapper in ("data", "results", "customers", "items"):
            if (
                wrapper in payload
                and len(payload) <= 3
                and isinstance(payload[wrapper], list | dict)
            ):
                return _pick(payload[wrapper])
        return payload
    raise CrmError("CRM lookup answered neither an object nor a list")


def _text(value: Any, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        raise CrmError("CRM lookup: a customer field is not text")
    return str(value).replace("\x00", "")[:limit]


def customer_from_payload(payload: Any, field_map: Mapping[str, str]) -> Customer | None:
    """Their JSON -> our Customer (None when they found nobody). CrmError if malformed."""
    item = _pick(payload)
    if item is None:
        return None
    theirs = {ours: field_map.get(ours, ours) for ours in CUSTOMER_FIELDS}
    cid = _text(item.get(theirs["id"]), 128)
    if not cid:
        raise CrmError("CRM lookup answer has no customer id")
    name = _text(item.get(theirs["name"]), 300) or cid
    raw_tags = item.get(theirs["tags"]) or []
    if isinstance(raw_tags, str):
        raw_tags = [t.strip() for t in raw_tags.split(",")]
    if not isinstance(raw_tags, list):
        raise CrmError("CRM lookup: tags is neither a list nor text")
    tags = tuple(t for t in (_text(t, 64) for t in raw_tags[:MAX_TAGS]) if t)
    owner = _text(item.get(theirs["owner"]), 64) or None
    reverse = {v: k for k, v in field_map.items()}
    used = set(theirs.values())
    attributes = {reverse.get(k, k): v for k, v in item.items() if k not in used}
    return Customer(id=cid, name=name, tags=tags, attributes=attributes, owner=owner)
