"""The PBXs the bridge serves: `PbxSite`, and the `[[pbx]]` entries that declare several.

A legacy configuration (`[pbx]` + `[ami]` + `[ari]`) serves one PBX, named `default` and not
namespaced; `Config.pbxs` derives it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.config.layers import ENV_PREFIX, build_section
from bridge.config.sections import AmiConfig, AriConfig, PbxConfig
from bridge.errors import ConfigError

# `[[pbx]]` entry names: short, lower case, digits and inner dashes; they prefix call ids
# (`east:1700000000.42`), agents' devices (`east:1001`) and environment names.
PBX_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,14}[a-z0-9])?")
LEGACY_PBX_NAME = "default"  # the one PBX of a `[pbx]` + `[ami]` + `[ari]` configuration


@dataclass(frozen=True)
class PbxSite:
    """One PBX the bridge serves: its own `[pbx]`, `[ami]` and `[ari]` keys.

    `namespaced` (every `[[pbx]]` entry) prefixes what the PBX numbers on its own with
    `<name>:`, since a Linkedid or an extension is unique only within one PBX. The single PBX
    of a legacy configuration is not namespaced: its call ids stay the bare Linkedid.
    """

    name: str
    pbx: PbxConfig = field(default_factory=PbxConfig)
    ami: AmiConfig = field(default_factory=AmiConfig)
    ari: AriConfig = field(default_factory=AriConfig)
    namespaced: bool = False

    @property
    def prefix(self) -> str:
        return f"{self.name}:" if self.namespaced else ""

    def qualify(self, value: str) -> str:
        """A Linkedid, Uniqueid or extension of this PBX as the bridge names it."""
        return f"{self.prefix}{value}" if value else value


_SITE_PARTS: dict[str, type] = {"ami": AmiConfig, "ari": AriConfig}


def pbx_env_prefix(name: str) -> str:
    """`CRM_BRIDGE_PBX_EAST_1_` for the `[[pbx]]` entry `east-1` (its `[pbx.ami]` keys:
    `CRM_BRIDGE_PBX_EAST_1_AMI_<KEY>`)."""
    return f"{ENV_PREFIX}PBX_{name.upper().replace('-', '_')}_"


def build_sites(
    entries: list[Any],
    environ: Mapping[str, str],
    pbx: PbxConfig,
    ami: AmiConfig,
    ari: AriConfig,
) -> tuple[PbxSite, ...]:
    """`[[pbx]]` entries: each `name`, its `[pbx]` keys and `[pbx.ami]`/`[pbx.ari]` tables.

    Layers, most specific last: defaults, `[ami]`/`[ari]` and `CRM_BRIDGE_PBX_<KEY>` (shared
    by every entry), the entry's own keys, then `CRM_BRIDGE_PBX_<NAME>_<KEY>` and
    `CRM_BRIDGE_PBX_<NAME>_AMI_<KEY>` / `_ARI_<KEY>`.
    """
    if not entries:
        raise ConfigError("pbx", "[[pbx]] needs at least one entry")
    legacy_keys = {f.name for f in dataclasses.fields(PbxConfig)}
    shared = {"pbx": dataclasses.asdict(pbx), "ami": dataclasses.asdict(ami)}
    shared["ari"] = dataclasses.asdict(ari)
    sites: list[PbxSite] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"pbx[{index}]", "must be a table")
        name = entry.get("name")
        if not isinstance(name, str) or not PBX_NAME.fullmatch(name):
            raise ConfigError(
                f"pbx[{index}].name",
                "required: 1-16 of a-z, 0-9 and inner '-' (it prefixes call ids)",
            )
        if any(site.name == name for site in sites):
            raise ConfigError(f"pbx.{name}.name", "two [[pbx]] entries have this name")
        env_name = name.replace("-", "_")
        if any(f"{env_name}_{key}" in legacy_keys for key in legacy_keys):
            # No key today, but a future `[pbx] east_x` would make CRM_BRIDGE_PBX_EAST_X mean
            # both it and the key `x` of an entry named `east`.
            raise ConfigError(f"pbx.{name}.name", "clashes with a [pbx] key's environment name")
        prefix = pbx_env_prefix(name)
        parts: dict[str, Any] = {}
        for part, part_type in _SITE_PARTS.items():
            raw = entry.get(part, {})
            if not isinstance(raw, dict):
                raise ConfigError(f"pbx.{name}.{part}", "must be a table")
            parts[part] = build_section(
                f"pbx.{name}.{part}",
                part_type,
                raw,
                environ,
                f"{prefix}{part.upper()}_",
                shared[part],
            )
        own = {k: v for k, v in entry.items() if k not in ("name", *_SITE_PARTS)}
        site_pbx = build_section(f"pbx.{name}", PbxConfig, own, environ, prefix, shared["pbx"])
        sites.append(PbxSite(name, site_pbx, parts["ami"], parts["ari"], namespaced=True))
    return tuple(sites)
