"""Each PBX's Stasis app: with several PBXs, one per `[[pbx]]` entry with ARI enabled,
recording its decisions in that PBX's namespace (`bridge.pbx.namespace`)."""

from __future__ import annotations

from bridge.ari import build_ari_app
from bridge.ari.stasis import AriApp, Router
from bridge.config import Config, PbxSite
from bridge.models import Decision, InboundCall
from bridge.pbx.namespace import namespace_event

__all__ = ["SiteRouter", "build_site_ari"]


class SiteRouter:
    """The route service for one PBX's ARI app: decisions recorded in its namespace."""

    def __init__(self, router: Router, site: PbxSite) -> None:
        self._router = router
        self._site = site

    async def route(self, call: InboundCall, deadline: float | None = None) -> Decision:
        return await self._router.route(call, deadline)

    async def record(self, call: InboundCall, decision: Decision, recording: str | None) -> None:
        await self._router.record(namespace_event(call, self._site.prefix), decision, recording)


def build_site_ari(config: Config, site: PbxSite, router: Router) -> AriApp | None:
    """The PBX's Stasis app, or None when its `[ari] enabled` is false."""
    return build_ari_app(config.for_pbx(site), SiteRouter(router, site))
