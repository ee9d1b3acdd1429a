"""ARI (Stasis) mode: the app that routes calls parked in `Stasis(<[ari] app>)`."""

from __future__ import annotations

from bridge.ari.app import AriApp, AriLink, Router
from bridge.ari.client import AriClient

__all__ = ["AriApp", "AriClient", "AriLink", "Router"]
