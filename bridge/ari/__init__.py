"""ARI (Stasis) mode: the app that routes calls parked in `Stasis(<[ari] app>)`.

`build_ari_app(config, router)` is what the composition root calls: the component, or None
when `[ari] enabled` is false. ONE bridge instance owns an ARI app (see bridge/ari/stasis.py).
"""

from __future__ import annotations

from bridge.ari.client import AriClient
from bridge.ari.stasis import AriApp, AriLink, Router
from bridge.config import Config

__all__ = ["AriApp", "AriClient", "AriLink", "Router", "build_ari_app"]


def build_ari_app(config: Config, router: Router) -> AriApp | None:
    """The Stasis app component when ARI mode is enabled, else None."""
    if not config.ari.enabled:
        return None
    return AriApp(config, router)
