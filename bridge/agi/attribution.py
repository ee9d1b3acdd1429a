"""Which PBX a FastAGI route request comes from, so its decision joins that PBX's call.

In order: the only PBX when there is one, the `pbx` argument of the AGI URL
(`AGI(agi://bridge:4573/route?pbx=east)`), the PBX whose `[pbx.ami] host` is the connecting
address. An argument that contradicts the address (a request from one PBX's AMI host naming
another PBX) attributes nothing: otherwise one PBX's dialplan could record the first decision
for another PBX's calls (the first decision for a uniqueid wins) and poison its routing record.
A request none of these attributes (several PBXs, no argument, an unknown address) is still
routed - a caller never waits on configuration - with the first PBX's region and template,
but its decision is not recorded: under a guessed namespace it could join another PBX's
call with the same Linkedid.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import parse_qs, urlsplit

from bridge.agi.protocol import AgiEnv
from bridge.config import PbxSite

__all__ = ["pbx_argument", "site_for_request"]


def pbx_argument(env: AgiEnv) -> str | None:
    """The `pbx=NAME` query argument of the AGI URL, if any."""
    return _pbx_in(env.get("network_script"), env.get("request"))


@lru_cache(maxsize=256)  # a dialplan has a handful of AGI URLs; parsing one is 10 us a call
def _pbx_in(script: str, request: str) -> str | None:
    try:
        queries = (script.split("?", 1)[1] if "?" in script else "", urlsplit(request).query)
    except ValueError:  # `agi://[::1/route`: no URL, so no argument
        return None
    for query in queries:
        try:
            values = parse_qs(query, max_num_fields=8).get("pbx")
        except ValueError:  # more fields than any dialplan writes
            return None
        if values:
            return values[0]
    return None


def site_for_request(
    env: AgiEnv, peer_host: str | None, sites: Sequence[PbxSite]
) -> PbxSite | None:
    """The PBX that asked (see the module docstring), or None when it cannot be told."""
    if len(sites) == 1:
        return sites[0]
    by_host = [site for site in sites if peer_host and site.ami.host == peer_host]
    named = pbx_argument(env)
    if named is not None:
        site = next((site for site in sites if site.name == named), None)
        if site is None or (len(by_host) == 1 and by_host[0] is not site):
            return None  # an unknown name, or one the address contradicts
        return site
    return by_host[0] if len(by_host) == 1 else None
