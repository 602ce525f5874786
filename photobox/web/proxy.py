"""Who the client is when a reverse proxy stands in front (setting ``trusted_proxies``).

A proxy makes every client look like the proxy (127.0.0.1 when it runs on the same box) and
names the real one in ``X-Forwarded-For``, and the host and scheme the client used in
``X-Forwarded-Host`` / ``X-Forwarded-Proto``. Anyone can send those headers, so photobox
believes them only from a peer listed in ``trusted_proxies``; with the setting empty (the
default) every client is the address it connects from. Login throttling, share-link rate
limits and the WebDAV Destination check all ask this module.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Mapping
from typing import Any

from photobox.inputs import parse_networks

__all__ = ["client_address", "forwarded_header", "from_trusted_proxy", "parse_networks"]

log = logging.getLogger("photobox")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_warned = False


@functools.lru_cache(maxsize=8)
def _ip(text: str) -> IP | None:
    """An address as proxies write it: bare, ``[v6]:port`` or ``v4:port``; IPv4-mapped IPv6 as IPv4."""
    text = text.strip().strip('"')
    if text.startswith("[") and "]" in text:
        text = text[1:text.index("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(ip: IP | None, networks: tuple[Network, ...]) -> bool:
    return ip is not None and any(ip.version == n.version and ip in n for n in networks)


def _peer(scope: Mapping[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "?"


def forwarded_header(scope: Mapping[str, Any], name: bytes) -> list[str]:
    """The comma-separated entries of every ``name`` header, in order."""
    return [part.strip() for key, value in scope.get("headers", ()) if key == name
            for part in value.decode("latin-1").split(",") if part.strip()]


def from_trusted_proxy(scope: Mapping[str, Any], trusted_proxies: str) -> bool:
    """Whether the peer of this connection is one of the ``trusted_proxies``."""
    networks = parse_networks(trusted_proxies)
    return bool(networks) and _trusted(_ip(_peer(scope)), networks)


def client_address(scope: Mapping[str, Any], trusted_proxies: str) -> str:
    """The client's address: the peer, or, when the peer is a trusted proxy, the right-most
    ``X-Forwarded-For`` entry that is not itself a trusted proxy. Entries further left were
    written by the client (or a proxy we do not know) and prove nothing."""
    peer = _peer(scope)
    networks = parse_networks(trusted_proxies)
    if not networks or not _trusted(_ip(peer), networks):
        _hint(scope, peer, networks)
        return peer
    address = str(_ip(peer))
    for hop in reversed(forwarded_header(scope, b"x-forwarded-for")):
        ip = _ip(hop)
        if ip is None:
            break  # garbage: keep the last hop a trusted proxy vouched for
        address = str(ip)
        if not _trusted(ip, networks):
            break
    return address


def _hint(scope: Mapping[str, Any], peer: str, networks: tuple[Network, ...]) -> None:
    """Say once in the log when a local proxy forwards clients but nobody told photobox to trust it:
    every client then shares the proxy's address (and its login-failure budget)."""
    global _warned
    if _warned or networks or peer not in ("127.0.0.1", "::1"):
        return
    if forwarded_header(scope, b"x-forwarded-for"):
        _warned = True
        log.warning("requests from %s carry X-Forwarded-For, but the setting trusted_proxies is empty: every "
                    "client counts as %s (one login-throttle budget for all). If a reverse proxy runs on this "
                    "box, set trusted_proxies = \"%s\".", peer, peer, peer)
