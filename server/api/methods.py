"""``OPTIONS`` and ``405`` answers that name every method a path takes (RFC 9110 §9.3.7,
§15.5.6).

FastAPI registers one route per path and method; a method a path does not take is
answered from the first route whose path matches, so ``Allow`` named one method
(``OPTIONS /v1/sessions/{id}`` said ``GET`` and left out ``DELETE``). This answers a
plain ``OPTIONS`` (not a CORS preflight, which the CORS middleware answers) with ``204``
and the full ``Allow``, and rewrites the ``Allow`` of every ``405`` the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from starlette.routing import Match

from headcast.server.api.auth import ASGIApp, Message, Receive, Scope, Send, header

CANDIDATES = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _flat(routes: Iterable[Any]) -> Iterator[Any]:
    """Routes, with included routers opened up (FastAPI keeps those whole)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        yield from _flat(inner.routes) if inner is not None else (route,)


def routed(routes: Iterable[Any], scope: Scope) -> bool:
    """Some route takes ``scope``'s method at its path (its 405, if any, is its own)."""
    return any(route.matches(scope)[0] == Match.FULL for route in _flat(routes))


def allowed_methods(routes: Iterable[Any], scope: Scope) -> list[str]:
    """The methods some route takes at ``scope``'s path, plus OPTIONS; [] when no route
    has that path. Each method is tried through the routes' own matching; a route that
    is there only to answer 405 (WHEP's trickle-ICE PATCH) does not count."""
    flat = [r for r in _flat(routes) if getattr(r, "status_code", None) != 405]
    methods = {
        method
        for method in CANDIDATES
        if any(route.matches({**scope, "method": method})[0] == Match.FULL for route in flat)
    }
    return sorted(methods | {"OPTIONS"}) if methods else []


class MethodsAllowed:
    """ASGI middleware; ``routes`` is read per request (routers may be added later)."""

    def __init__(self, app: ASGIApp, router: Any) -> None:
        self.app = app
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        preflight = header(scope, b"access-control-request-method") is not None
        if scope.get("method") == "OPTIONS" and not preflight:
            allow = allowed_methods(self.router.routes, scope)
            if allow:
                headers = [(b"allow", ", ".join(allow).encode("ascii"))]
                await send({"type": "http.response.start", "status": 204, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return

        async def rewrite_allow(message: Message) -> None:
            if (
                message["type"] == "http.response.start"
                and message["status"] == 405
                and not routed(self.router.routes, scope)
            ):  # the router's own 405 (a route answering 405 itself names its Allow)
                allow = ", ".join(allowed_methods(self.router.routes, scope)).encode("ascii")
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                message = {**message, "headers": [*kept, (b"allow", allow)]}
            await send(message)

        await self.app(scope, receive, rewrite_allow)
