"""Where the configuration comes from: the TOML file and the environment, merged over the
defaults into a checked `Config`."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridge.config.layers import ENV_PREFIX, build_section
from bridge.config.pbx import build_sites
from bridge.config.root import Config, section_types
from bridge.config.validate import validate_config
from bridge.errors import ConfigError

DEFAULT_FILE = "crm-bridge.toml"


def build_config(
    file_values: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    validate: bool = True,
    runtime: bool = True,
) -> Config:
    """Merge defaults, file values and environment into a checked `Config`.

    `runtime=False` skips what only running the bridge needs (PBX credentials), for
    commands such as `db migrate` or `rules list`.
    """
    file_values = dict(file_values or {})
    environ = os.environ if environ is None else environ
    sections = section_types()
    for name in file_values:
        if name not in sections:
            raise ConfigError(name, "unknown section")
    entries = file_values.get("pbx")
    if isinstance(entries, list):  # `[[pbx]]`: several PBXs (see pbx.build_sites)
        file_values["pbx"] = {}
    built: dict[str, Any] = {}
    for name, section_type in sections.items():
        raw = file_values.get(name, {})
        if not isinstance(raw, dict):
            raise ConfigError(name, "must be a table")
        built[name] = build_section(
            name, section_type, raw, environ, f"{ENV_PREFIX}{name.upper()}_", {}
        )
    if isinstance(entries, list):
        sites = build_sites(entries, environ, built["pbx"], built["ami"], built["ari"])
        first = sites[0]
        built.update(pbx=first.pbx, ami=first.ami, ari=first.ari, pbx_sites=sites)
    config = Config(**built)
    if validate:
        validate_config(config, runtime=runtime)
    return config


def config_path(explicit: str | None, environ: Mapping[str, str] | None = None) -> Path | None:
    """`--config FILE`, else `$CRM_BRIDGE_CONFIG`, else `./crm-bridge.toml` if present."""
    environ = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if environ.get("CRM_BRIDGE_CONFIG"):
        return Path(environ["CRM_BRIDGE_CONFIG"])
    default = Path(DEFAULT_FILE)
    return default if default.is_file() else None


def load_config(
    explicit: str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    validate: bool = True,
    runtime: bool = True,
) -> Config:
    path = config_path(explicit, environ)
    file_values: dict[str, Any] = {}
    if path is not None:
        try:
            file_values = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError("--config", f"no such file {path}") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from exc
    return build_config(file_values, environ, validate=validate, runtime=runtime)
