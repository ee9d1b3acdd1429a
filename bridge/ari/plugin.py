"""The ARI plugin: the Stasis application routing calls (component `ari`), when
`[ari] enabled`."""

from __future__ import annotations

from bridge.ari import build_ari_app
from bridge.plugin import Plugin
from bridge.routing.plugin import ROUTE_SERVICE

__all__ = ["ARI"]

ARI = Plugin("ari", build=lambda ctx: build_ari_app(ctx.config, ctx.need(ROUTE_SERVICE)))
