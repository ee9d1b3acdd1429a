"""The bridge's HTTP side on the `[http]` port: app factory, server component, routes.

Features add routes with `setup_*(app, deps)` functions passed to `make_web_app(setups=...)`.
"""

from __future__ import annotations

from bridge.web.factory import SECURITY_HEADERS, make_web_app
from bridge.web.server import HttpServer

__all__ = ["SECURITY_HEADERS", "HttpServer", "make_web_app"]
