"""The bridge's HTTP side on the `[http]` port: the app factory, error mapping, the admin
API's frame and auth, /healthz and /metrics, and the server component.

Features mount their own routes from their plugin's `routes(http, ctx)` (`bridge.plugin`);
the HTTP plugin (`bridge.web.plugin`) calls them in plugin order.
"""

from __future__ import annotations

from bridge.web.factory import SECURITY_HEADERS, make_web_app
from bridge.web.server import HttpServer

__all__ = ["SECURITY_HEADERS", "HttpServer", "make_web_app"]
