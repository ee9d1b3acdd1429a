"""Which keys hold secrets, and a section as plain data with them hidden (for logs)."""

from __future__ import annotations

import dataclasses
from typing import Any

SECRET_KEYS = frozenset(
    {
        ("database", "url"),
        ("ami", "secret"),
        ("ari", "password"),
        ("crm", "auth_header"),
        ("webhook", "secret"),
        ("alerts", "smtp_password"),
        ("alerts", "sms_token"),
        ("alerts", "sms_auth_header"),
        ("alerts", "sms_url"),  # a generic gateway's URL may carry its key
        ("pbx", "cdr_source"),  # a PostgreSQL URL may hold a password
    }
)


def redacted_section(name: str, section: Any) -> dict[str, Any]:
    """The `[name]` section as plain data, each secret key that is set shown as `***`."""
    values = dataclasses.asdict(section)
    for key in values:
        if (name, key) in SECRET_KEYS and values[key]:
            values[key] = "***"
    return values
