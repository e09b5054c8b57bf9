"""ICE configuration from settings: STUN/TURN servers and the host addresses to gather on.

The host addresses are applied process-wide by
:func:`~headcast.client.ice.restrict_host_addresses` (re-exported here), which the app
calls at start-up: every peer in the process (server and, in tests, clients) gathers on
those addresses only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer
from aiortc.exceptions import InvalidStateError

from headcast.client.ice import restrict_host_addresses
from headcast.server.settings import IceServer

log = logging.getLogger(__name__)
__all__ = ["quiet_closed_connects", "restrict_host_addresses", "rtc_configuration"]


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
