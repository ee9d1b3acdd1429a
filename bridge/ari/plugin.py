"""The ARI plugin: the Stasis application routing calls (component `ari`: one PBX's app, or
several PBXs' grouped), for each PBX whose `[ari] enabled`."""

from __future__ import annotations

from bridge.ari.sites import build_site_ari
from bridge.component import Component
from bridge.pbx.group import grouped
from bridge.plugin import Context, Plugin
from bridge.routing.plugin import ROUTE_SERVICE

__all__ = ["ARI"]


def _apps(ctx: Context) -> Component | None:
    router = ctx.need(ROUTE_SERVICE)
    apps = [(site.name, build_site_ari(ctx.config, site, router)) for site in ctx.config.pbxs]
    return grouped("ari", apps)


ARI = Plugin("ari", build=_apps)
