"""Which agent extension a channel name carries: `[pbx] device_pattern`, one regex or several.

A PBX names one agent's channels in more than one way: `PJSIP/1001-0000000a` for the phone,
`Local/1001@from-queue-0000001f;1` for FreePBX's queue member hop, `SIP/ID730150-…` for a
trunk-side device. Each regex has a named group `ext`; they are tried in order and the first
that matches with a non-empty `ext` wins. Python's `re` refuses a group name twice, so the
patterns cannot be joined into one alternation: this small matcher stands where a compiled
pattern used to (it has the same `match`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

__all__ = ["DeviceMatcher", "DevicePatterns", "device_of", "explain"]


class DeviceMatcher(Protocol):
    """A compiled `re.Pattern` or `DevicePatterns`: anything whose `match` gives `ext`."""

    def match(self, string: str, /) -> re.Match[str] | None: ...


class DevicePatterns:
    """Several device patterns tried in order (a single one behaves like `re.compile`)."""

    def __init__(self, patterns: Sequence[str | re.Pattern[str]]) -> None:
        compiled = tuple(re.compile(p) if isinstance(p, str) else p for p in patterns)
        if not compiled:
            raise ValueError("needs at least one regular expression")
        for pattern in compiled:
            if "ext" not in pattern.groupindex:
                raise ValueError(f"{pattern.pattern!r} needs a named group (?P<ext>...)")
        self.patterns = compiled

    @classmethod
    def parse(cls, value: str | Sequence[str]) -> DevicePatterns:
        """From the configuration value; ValueError (with the reason) when one is invalid."""
        items = [value] if isinstance(value, str) else list(value)
        try:
            return cls(items)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc

    def match(self, string: str, /) -> re.Match[str] | None:
        for pattern in self.patterns:
            m = pattern.match(string)
            if m is not None and m.group("ext"):
                return m
        return None

    @property
    def pattern(self) -> str:
        """The patterns as written, for messages."""
        return " | ".join(p.pattern for p in self.patterns)


def device_of(matcher: DeviceMatcher, name: str) -> str | None:
    """The agent extension `name` carries, if any."""
    if not name:
        return None
    m = matcher.match(name)
    return (m.group("ext") or None) if m is not None else None


def explain(patterns: DevicePatterns, name: str) -> tuple[str, int] | None:
    """(extension, index of the pattern that found it), for `crm-bridge devices test`."""
    for index, pattern in enumerate(patterns.patterns):
        m = pattern.match(name)
        if m is not None and m.group("ext"):
            return m.group("ext"), index
    return None
