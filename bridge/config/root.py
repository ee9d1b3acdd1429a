"""`Config`, the root of the configuration: one field per TOML section, and the PBXs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from bridge.config.pbx import LEGACY_PBX_NAME, PbxSite
from bridge.config.redact import redacted_section
from bridge.config.sections import (
    AgiConfig,
    AlertsConfig,
    AmiConfig,
    AriConfig,
    ClusterConfig,
    CrmConfig,
    DatabaseConfig,
    DialConfig,
    HttpConfig,
    LogConfig,
    PbxConfig,
    PermissionsConfig,
    PopsConfig,
    RecordsConfig,
    RoutingConfig,
    WallboardConfig,
    WebhookConfig,
)
from bridge.devices import DevicePatterns


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    ami: AmiConfig = field(default_factory=AmiConfig)
    ari: AriConfig = field(default_factory=AriConfig)
    agi: AgiConfig = field(default_factory=AgiConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    pops: PopsConfig = field(default_factory=PopsConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    pbx: PbxConfig = field(default_factory=PbxConfig)
    crm: CrmConfig = field(default_factory=CrmConfig)
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    records: RecordsConfig = field(default_factory=RecordsConfig)
    permissions: PermissionsConfig = field(default_factory=PermissionsConfig)
    wallboard: WallboardConfig = field(default_factory=WallboardConfig)
    dial: DialConfig = field(default_factory=DialConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    log: LogConfig = field(default_factory=LogConfig)
    # `[[pbx]]` entries; empty for a legacy single PBX (`pbxs` then derives it from `pbx`,
    # `ami` and `ari`, which otherwise hold the first entry's values). Not a section.
    pbx_sites: tuple[PbxSite, ...] = field(default=(), metadata={"section": False})

    @property
    def device_regex(self) -> DevicePatterns:
        return DevicePatterns.parse(self.pbx.device_pattern)

    @property
    def pbxs(self) -> tuple[PbxSite, ...]:
        """Every PBX the bridge serves, in configuration order (at least one)."""
        return self.pbx_sites or (PbxSite(LEGACY_PBX_NAME, self.pbx, self.ami, self.ari),)

    def for_pbx(self, site: PbxSite) -> Config:
        """This configuration as seen by one PBX's parts (its `[pbx]`, `[ami]`, `[ari]`)."""
        return dataclasses.replace(self, pbx=site.pbx, ami=site.ami, ari=site.ari, pbx_sites=())

    def redacted(self) -> dict[str, Any]:
        """The configuration as plain data with every secret replaced, for logs."""
        out: dict[str, Any] = {}
        for section in section_fields():
            out[section.name] = redacted_section(section.name, getattr(self, section.name))
        if self.pbx_sites:
            out["pbx_sites"] = {
                site.name: {
                    part: redacted_section(part, getattr(site, part))
                    for part in ("pbx", "ami", "ari")
                }
                for site in self.pbx_sites
            }
        return out


def section_fields() -> list[dataclasses.Field[Any]]:
    """The fields of `Config` that are TOML sections (`[database]`, `[ami]`, …)."""
    return [f for f in dataclasses.fields(Config) if f.metadata.get("section", True)]


def section_types() -> dict[str, type]:
    hints = get_type_hints(Config)
    return {f.name: hints[f.name] for f in section_fields()}
