"""FastAGI: the PBX asks where an inbound call goes.

- `protocol`: pure wire code. `EnvParser` / `parse_env(bytes) -> AgiEnv`,
  `encode_set_variable(name, value)`, `encode_get_variable(name)`, `encode_verbose`,
  `argument_text`, `ReplyParser` / `parse_reply_line(line) -> Reply`.
- `server.AgiServer(handlers, *, host, port, read_timeout_s, write_timeout_s, max_sessions,
  allow, first_byte_timeout_s, max_pending)`: Component (start/stop/health, `port`, `guard`);
  a handler is `async (AgiSession) -> None`.
- `route.RouteHandler(router, config)`: the `route` script, setting the `BRIDGE_*` variables.
- `build_agi_server(config, router)`: the server the composition root runs.
"""

from __future__ import annotations

from bridge.agi.route import RouteHandler, Router
from bridge.agi.server import AgiServer, AgiSession, Handler
from bridge.config import Config

__all__ = ["AgiServer", "AgiSession", "Handler", "RouteHandler", "Router", "build_agi_server"]


def build_agi_server(config: Config, router: Router) -> AgiServer:
    return AgiServer(
        {"route": RouteHandler(router, config)},
        host=config.agi.host,
        port=config.agi.port,
        read_timeout_s=config.agi.read_timeout_s,
        max_sessions=config.agi.max_sessions,
        allow=config.agi.allow,
        first_byte_timeout_s=config.agi.first_byte_timeout_s,
        max_pending=config.agi.max_pending,
    )
