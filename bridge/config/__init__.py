"""Layered configuration: defaults < TOML file < environment (`CRM_BRIDGE_<SECTION>_<KEY>`).

Each section is a frozen dataclass (`sections`); its fields are the keys a user may set.
Loading (`loading`, `layers`) checks every value against its field's type, then the section's
own rules (`validate`), and a wrong value raises `ConfigError` naming the key, which the CLI
turns into exit status 2. `pbx` holds the PBXs the bridge serves (`[[pbx]]`), `redact` which
keys are secrets, `root` the `Config` that gathers them.
"""

from __future__ import annotations

from bridge.config.layers import ENV_PREFIX
from bridge.config.loading import DEFAULT_FILE, build_config, config_path, load_config
from bridge.config.pbx import PBX_NAME, PbxSite
from bridge.config.root import Config, section_fields
from bridge.config.sections import (
    CARD_SECTIONS,
    DEFAULT_DEVICE_PATTERN,
    AgiConfig,
    AlertsConfig,
    AmiConfig,
    AriConfig,
    CrmConfig,
    PbxConfig,
    PermissionsConfig,
    RoutingConfig,
)

__all__ = [
    "CARD_SECTIONS",
    "DEFAULT_DEVICE_PATTERN",
    "DEFAULT_FILE",
    "ENV_PREFIX",
    "PBX_NAME",
    "AgiConfig",
    "AlertsConfig",
    "AmiConfig",
    "AriConfig",
    "Config",
    "CrmConfig",
    "PbxConfig",
    "PbxSite",
    "PermissionsConfig",
    "RoutingConfig",
    "build_config",
    "config_path",
    "load_config",
    "section_fields",
]
