"""Which peers a port accepts: addresses and CIDR networks, checked before a byte is read.

Pure code: parsing the configured list (hostile values give a `ConfigError` naming the key)
and matching a socket's peer address against it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from bridge.errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

LOOPBACK: tuple[str, ...] = ("127.0.0.0/8", "::1")
MAX_ENTRIES = 1000
MAX_ENTRY_CHARS = 64  # the longest IPv6 CIDR is 43 characters


def parse_allow(values: Sequence[str], key: str) -> tuple[Network, ...]:
    """The networks of an allow list; ConfigError naming `key` for any value that is not one.

    A bare address is a one-host network. Host bits set under a prefix (`10.0.0.5/24`) are an
    error rather than silently widened: the operator probably meant something else.
    """
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise ConfigError(key, "expected a list of addresses or networks")
    if not values:
        raise ConfigError(
            key, "empty, so nothing could connect (0.0.0.0/0 and ::/0 allow any peer)"
        )
    if len(values) > MAX_ENTRIES:
        raise ConfigError(key, f"more than {MAX_ENTRIES} entries")
    networks = []
    for value in values:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected an address or network, got {value!r:.80}")
        text = value.strip()
        if not text or len(text) > MAX_ENTRY_CHARS or not text.isascii() or not text.isprintable():
            raise ConfigError(key, f"{value!r:.80} is not an address or network")
        if "%" in text:
            raise ConfigError(key, f"{value!r:.80}: a zone index (%...) is not supported")
        try:
            networks.append(ipaddress.ip_network(text, strict=True))
        except ValueError as exc:
            hint = (
                "host bits set; give the network address"
                if "host bits" in str(exc)
                else ("addresses or CIDRs only, not host names")
            )
            raise ConfigError(key, f"{value!r:.80} is not an address or network ({hint})") from exc
    return tuple(networks)


def peer_address(peername: Any) -> Address | None:
    """The IP address in a socket's `peername`, IPv4-mapped IPv6 (`::ffff:a.b.c.d`, what a
    dual-stack listener reports for IPv4 peers) unmapped; None when there is none."""
    if not isinstance(peername, tuple) or not peername or not isinstance(peername[0], str):
        return None
    host = peername[0].split("%", 1)[0]  # a scope id (fe80::1%eth0) names no other host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_allowed(address: Address | None, networks: Iterable[Network]) -> bool:
    """True when `address` lies in one of `networks` (an unknown address never does)."""
    if address is None:
        return False
    return any(address.version == net.version and address in net for net in networks)
