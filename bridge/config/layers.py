"""One section's layers: its defaults (or a base), the file's table, then the environment
(`<prefix><KEY>`), each raw value turned into the field's type or refused naming the key."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, get_type_hints

from bridge.errors import ConfigError

ENV_PREFIX = "CRM_BRIDGE_"


def build_section(
    dotted: str,
    section_type: type,
    raw: Mapping[str, Any],
    environ: Mapping[str, str],
    env_prefix: str,
    base: Mapping[str, Any],
) -> Any:
    """One section: `base` values, then the file's `raw` table, then `<env_prefix><KEY>`."""
    hints = get_type_hints(section_type)
    known = {f.name for f in dataclasses.fields(section_type)}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{dotted}.{key}", "unknown key")
    values: dict[str, Any] = dict(base)
    for key in known:
        env_name = f"{env_prefix}{key.upper()}"
        if env_name in environ:
            values[key] = coerce(f"{dotted}.{key}", hints[key], environ[env_name], from_env=True)
        elif key in raw:
            values[key] = coerce(f"{dotted}.{key}", hints[key], raw[key], from_env=False)
    return section_type(**values)


def coerce(key: str, annotation: Any, value: Any, from_env: bool) -> Any:
    """Turn a raw TOML or environment value into the field's type, or raise ConfigError."""
    text = str(annotation)
    if annotation is bool or text == "bool":
        if isinstance(value, bool):
            return value
        if from_env and isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off", ""}:
                return False
        raise ConfigError(key, f"expected true or false, got {value!r}")
    if annotation is int or text == "int":
        if isinstance(value, bool):
            raise ConfigError(key, f"expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if from_env and isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ConfigError(key, f"expected an integer, got {value!r}")
    if annotation is float or text == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if from_env and isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise ConfigError(key, f"expected a number, got {value!r}")
    if text == "str | list[str]":
        # One value or several (`[pbx] device_pattern`); in the environment a JSON list.
        if from_env and isinstance(value, str) and value.lstrip().startswith("["):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ConfigError(key, f"expected a JSON list of strings: {exc}") from exc
        if isinstance(value, str):
            return value
        if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
            return list(value)
        raise ConfigError(key, f"expected a string or a list of strings, got {value!r}")
    if annotation is str or text == "str":
        if isinstance(value, str):
            return value
        raise ConfigError(key, f"expected a string, got {value!r}")
    if text.startswith("list"):
        if from_env and isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return list(value)
        raise ConfigError(key, f"expected a list of strings, got {value!r}")
    if text.startswith("dict"):
        if from_env and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ConfigError(key, f"expected a JSON object: {exc}") from exc
        if isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            return dict(value)
        raise ConfigError(key, f"expected a table of strings, got {value!r}")
    raise ConfigError(key, f"unsupported type {annotation!r}")  # pragma: no cover
