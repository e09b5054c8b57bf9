"""server/live/ice.py: peer-connection noise that is not an error."""

from __future__ import annotations

import asyncio


def test_closed_peer_connects_are_not_reported_as_errors() -> None:
    """aiortc's connect task fails with 'RTCIceTransport is closed' when a viewer leaves
    mid-negotiation: that is not an error; any other unretrieved exception still is."""

    from aiortc.exceptions import InvalidStateError

    from headcast.server.live.ice import quiet_closed_connects

    loop = asyncio.new_event_loop()
    try:
        seen: list[BaseException] = []
        loop.set_exception_handler(lambda _loop, ctx: seen.append(ctx["exception"]))
        quiet_closed_connects(loop)
        closed = InvalidStateError("RTCIceTransport is closed")
        other = RuntimeError("something else")
        loop.call_exception_handler({"message": "x", "exception": closed})
        loop.call_exception_handler({"message": "x", "exception": other})
        assert seen == [other]
    finally:
        loop.close()
