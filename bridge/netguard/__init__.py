"""Connection guards for the ports the bridge listens on (FastAGI, HTTP, pops websocket).

Anything on the network may connect to these ports, and without limits idle or slow sockets
exhaust the session slots or the process's file descriptors, taking every port down together.

- `allow`: `parse_allow(values, key) -> networks` (ConfigError naming the key),
  `peer_address(peername)`, `is_allowed(address, networks)`, `LOOPBACK`.
- `guard.ConnectionGuard(name, *, max_connections, max_pending, first_byte_timeout_s,
  header_timeout_s, allow, quiet_s)`: `wrap(factory)` gives a protocol factory for
  `loop.create_server`; `open`, `pending`, `refused`, `snapshot()`, `close()`.
  `ConnectionCut` is what a cut connection's protocol sees in `connection_lost`.
- `episodes.EpisodeLog`: refusals logged once per episode, with their count.
- `fds.raise_open_files_limit(needed)`: the soft RLIMIT_NOFILE raised to what the caps need.
- `websockets.guarded_connection(guard, base)`: the same guard for a websockets server.
"""

from __future__ import annotations

from bridge.netguard.allow import LOOPBACK, is_allowed, parse_allow, peer_address
from bridge.netguard.episodes import EpisodeLog
from bridge.netguard.fds import raise_open_files_limit
from bridge.netguard.guard import ConnectionCut, ConnectionGuard, HeaderEnd

__all__ = [
    "LOOPBACK",
    "ConnectionCut",
    "ConnectionGuard",
    "EpisodeLog",
    "HeaderEnd",
    "is_allowed",
    "parse_allow",
    "peer_address",
    "raise_open_files_limit",
]
