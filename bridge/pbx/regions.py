"""Which region reads a PBX's national numbers: its own `default_region`.

A number typed or dialled without a country code means something only in one PBX's region.
With several PBXs (`[[pbx]]`) a call's PBX is the prefix of its call id (`east:1700000000.42`,
see `bridge.pbx.namespace`) and an agent's is its `pbx` column; `PbxRegions.of_pbx` is the one
lookup both go through. A bare call id, an agent with `pbx = ''` or a name no longer configured
read with the first PBX's region, the only one a legacy single PBX has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.config import Config

__all__ = ["PbxRegions"]


@dataclass(frozen=True)
class PbxRegions:
    """Each `[[pbx]]` entry's `default_region` by name; `default` is the first PBX's."""

    default: str = "US"
    by_pbx: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, config: Config) -> PbxRegions:
        sites = config.pbxs
        named = {site.name: site.pbx.default_region for site in sites if site.namespaced}
        return cls(sites[0].pbx.default_region, named)

    def of_pbx(self, pbx: str) -> str:
        """The region of the PBX named `pbx` ('' or unknown: the first PBX's)."""
        return self.by_pbx.get(pbx, self.default)

    def of_call(self, call_id: str) -> str:
        """The region of the PBX a call id (or a device, `east:1001`) names."""
        pbx, colon, _ = call_id.partition(":")
        return self.of_pbx(pbx) if colon else self.default
