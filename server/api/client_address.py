"""Which address a request comes from: the peer's, or the one a trusted proxy names.

``X-Forwarded-For`` is a header any client can write. It is read only when the peer
itself is one of ``trusted_proxies`` (addresses or networks, e.g. ``10.0.0.0/8``); then
the client is the right-most address in the header that is not a trusted proxy (the
entries to its left were written by whoever the proxy heard from and prove nothing).
Throttling (:mod:`server.api.auth`) and logs use the result. uvicorn's own proxy-header
handling is off (``serve`` passes ``proxy_headers=False``) so that this is the one rule.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from headcast.server.api.auth import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """``trusted_proxies`` entries as networks (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries)


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in net for net in networks)


def forwarded_client(peer: str, forwarded_for: str | None, networks: tuple[Network, ...]) -> str:
    """The client address of a request from ``peer`` carrying ``X-Forwarded-For``."""
    if not forwarded_for or not _trusted(peer, networks):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer


class ClientAddress:
    """ASGI middleware: ``scope["client"]`` set to the forwarded client where trusted."""

    def __init__(self, app: ASGIApp, trusted_proxies: Iterable[str] = ()) -> None:
        self.app = app
        self.networks = parse_networks(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.networks and scope["type"] in ("http", "websocket") and scope.get("client"):
            host, port = scope["client"]
            header = None
            for key, value in scope.get("headers", ()):
                if key == b"x-forwarded-for":  # several headers are one list (RFC 9110 5.3)
                    part = value.decode("latin-1")
                    header = part if header is None else f"{header},{part}"
            client = forwarded_client(str(host), header, self.networks)
            if client != host:
                scope = dict(scope, client=(client, 0))
        await self.app(scope, receive, send)
