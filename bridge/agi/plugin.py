"""The FastAGI plugin: the `route` script's server on the `[agi]` port (component `agi`)."""

from __future__ import annotations

from bridge.agi import build_agi_server
from bridge.plugin import Plugin
from bridge.routing.plugin import ROUTE_SERVICE

__all__ = ["AGI"]

AGI = Plugin("agi", build=lambda ctx: build_agi_server(ctx.config, ctx.need(ROUTE_SERVICE)))
