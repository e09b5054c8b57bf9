"""Cross-site requests: a web page the user visits must not drive this server.

Browsers send some requests without asking first (a "simple" ``POST`` with
``Content-Type: text/plain``, any WebSocket handshake), so CORS alone does not stop a
foreign page from starting renders or sessions on a server without an API key (the
default on a developer's machine). Every state-changing request (``POST``, ``PUT``,
``PATCH``, ``DELETE``) and every WebSocket handshake whose ``Origin`` header is present
must come from an allowed origin: one of ``cors_origins`` (``"*"`` allows all), or the
server's own (the ``Origin``'s host and port are the request's ``Host``). Requests
without ``Origin`` come from programs, not pages, and pass. Answers ``403`` with the
reason (a WebSocket is refused before its handshake).

The endpoints whose body is JSON also need the JSON content type when they have a
body (``415`` otherwise): a page cannot send that type without a CORS preflight.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from headcast.server.api.auth import ASGIApp, Receive, Scope, Send, header, refuse

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: (method, path) of the endpoints that read a JSON body
JSON_BODIES = re.compile(r"/v1/(sessions|tokens|livekit/workers|sessions/[^/]+/(control|say))/?")


def is_json(content_type: str) -> bool:
    """``application/json`` or any ``application/*+json``, parameters ignored."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class OriginGuard:
    """ASGI middleware refusing cross-site state changes and non-JSON JSON bodies."""

    def __init__(self, app: ASGIApp, allowed_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = frozenset(o.rstrip("/") for o in allowed_origins)

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        if "*" in self.allowed or origin in self.allowed:
            return True
        netloc = urlsplit(origin).netloc if "://" in origin else ""
        return bool(netloc) and host is not None and netloc.lower() == host.lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        method = scope.get("method", "GET") if kind == "http" else "GET"
        if kind == "websocket" or (kind == "http" and method in STATE_CHANGING):
            origin = header(scope, b"origin")
            if origin is not None and not self.origin_allowed(origin, header(scope, b"host")):
                reason = (
                    f"requests from pages on {origin} are not allowed; add it to the "
                    "server's cors_origins"
                )
                await refuse(scope, send, reason, 403, challenge=False)
                return
        if kind == "http" and method == "POST" and JSON_BODIES.fullmatch(scope.get("path", "")):
            content_type = header(scope, b"content-type")
            has_body = header(scope, b"transfer-encoding") is not None or (
                header(scope, b"content-length") not in (None, "0")
            )
            if has_body and content_type is not None and not is_json(content_type):
                reason = f"send this body as application/json, not {content_type}"
                await refuse(scope, send, reason, 415, challenge=False)
                return
        await self.app(scope, receive, send)
