"""Which browser origins may open the pop websocket. Pure.

A browser always sends `Origin` on a websocket handshake, so checking it stops another web
site from using an agent's browser to connect. Rules:

* `[pops] origins` set: exactly those origins (scheme://host[:port], compared case-insensitively,
  default ports folded: `http://x:80` == `http://x`).
* empty: the agent page's own origin, `http://<[http] host>:<[http] port>`; for a loopback
  or unspecified bind (127.0.0.1, ::1, localhost, 0.0.0.0, ::) also the loopback aliases
  `http://localhost:P`, `http://127.0.0.1:P`, `http://[::1]:P`. An operator serving the page
  under a public name must list it in `[pops] origins`.
* no `Origin` header: allowed. Only browsers send it, and a non-browser client (a test, a
  softphone plugin) has to present an agent token in its hello anyway.
* `Origin: null` (sandboxed frames, file:// pages) and anything unparsable: refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["default_origins", "normalise_origin", "origin_allowed"]

_LOOPBACK = {"127.0.0.1", "::1", "localhost", "0.0.0.0", "::", ""}  # noqa: S104
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_origin(origin: str) -> str | None:
    """`scheme://host:port` in lower case, or None if it is not an http(s) origin."""
    if not isinstance(origin, str) or len(origin) > 300 or any(c in origin for c in "\r\n\x00"):
        return None
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port or _DEFAULT_PORTS[scheme]}"


def default_origins(http_host: str, http_port: int) -> list[str]:
    """The agent page's own origin(s) for an `[http]` bind."""
    host = http_host.strip().lower()
    out = []
    if host not in _LOOPBACK:
        shown = f"[{host}]" if ":" in host else host
        out.append(f"http://{shown}:{http_port}")
    if host in _LOOPBACK or host.startswith("127."):
        out += [f"http://{h}:{http_port}" for h in ("localhost", "127.0.0.1", "[::1]")]
    return out


def origin_allowed(origin: str | None, allowed: Iterable[str]) -> bool:
    if origin is None:
        return True
    mine = normalise_origin(origin)
    if mine is None:
        return False
    return any(normalise_origin(a) == mine for a in allowed)
