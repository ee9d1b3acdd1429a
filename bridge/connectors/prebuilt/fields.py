"""Reading vendor JSON defensively: wrong types become safe defaults, never exceptions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.connectors.prebuilt.calls import clean
from bridge.errors import CrmError

__all__ = ["as_list", "as_map", "row", "text"]


def as_map(value: Any, what: str = "") -> Mapping[str, Any]:
    if isinstance(value, dict):
        return value
    if what:
        raise CrmError(f"{what} is not a JSON object")
    return {}


def as_list(value: Any, what: str = "") -> list[Any]:
    if isinstance(value, list):
        return value
    if value is None or not what:
        return []
    raise CrmError(f"{what} is not a JSON list")


def text(value: Any, limit: int = 300) -> str:
    return clean(value, limit).strip()


def row(item: Any, keys: Mapping[str, str]) -> dict[str, Any]:
    """A card row: our key -> their value (text or number), for the keys present."""
    source = as_map(item)
    out: dict[str, Any] = {}
    for ours, theirs in keys.items():
        value = source.get(theirs)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            out[ours] = value
        elif isinstance(value, str):
            out[ours] = text(value, 200)
        elif isinstance(value, dict) and isinstance(value.get("name"), str):
            out[ours] = text(value["name"], 200)
    return out
