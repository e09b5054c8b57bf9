"""ICE configuration from settings: STUN/TURN servers and the host addresses to gather on.

aioice picks host candidates from every interface except loopback and has no option
to choose them, so :func:`restrict_host_addresses` replaces its address lookup. That is
process-wide (aioice keeps it as a module function); the app installs it at start-up
and every peer in the process (server and, in tests, clients) gathers on those
addresses only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.exceptions import InvalidStateError

from headcast.server.settings import IceServer

log = logging.getLogger(__name__)
_ORIGINAL = aioice.ice.get_host_addresses


def restrict_host_addresses(addresses: Sequence[str]) -> None:
    """Gather host candidates on ``addresses`` only; empty restores aioice's own choice."""
    chosen = list(addresses)
    if not chosen:
        aioice.ice.get_host_addresses = _ORIGINAL
        return

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = host_addresses


def rtc_configuration(servers: Sequence[IceServer]) -> RTCConfiguration:
    """aiortc configuration for the given STUN/TURN servers (none: host candidates only)."""
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in servers
        ]
    )


def quiet_closed_connects(loop: asyncio.AbstractEventLoop) -> None:
    """Log at debug, not as an error with a traceback, the connect task aiortc leaves
    failing when a peer is closed while ICE still runs (a viewer leaves or its session is
    deleted mid-negotiation: nothing is wrong). Everything else goes to the handler that
    was there before."""
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, InvalidStateError) and "closed" in str(exc):
            log.debug("peer closed while connecting: %s", exc)
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
