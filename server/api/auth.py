"""The check that guards the API with the API key or session tokens.

Auth is on exactly when ``api_key`` is set. Then every ``/v1/`` request except CORS
preflights, and ``/metrics`` (it lists session ids), needs ``Authorization: Bearer
<token or api key>``, or ``?token=`` on the URL (browsers cannot put headers on a
WebSocket). Missing, malformed, expired, foreign (other secret) and wrong-origin tokens
(:mod:`server.api.tokens`) answer ``401`` with a reason; a client address that sends
``MAX_FAILURES`` of them within a minute waits (``429``), except with the API key
itself. A token opens sessions (``POST /v1/sessions``, ``POST /v1/whep``; its avatar
limit is enforced there) and uses only the sessions it opened (``/v1/sessions/{id}/...``,
``403`` for others); besides that it may read ``GET /v1/avatars`` and
``GET /v1/client/config``. Everything else (listing sessions, renders, portrait
uploads, minting, metrics) needs the API key (``403``). WebSockets are refused before
the handshake (HTTP 403). Credentials are masked in every log line uvicorn writes.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import HTTPConnection

from headcast.server.api.tokens import (
    Claims,
    ScopeError,
    TokenError,
    check_avatar,
    check_origin,
    signing_secret,
    verify,
)
from headcast.server.settings import ServerSettings

PROTECTED_PREFIX = "/v1/"
TOKEN_PATH = "/v1/tokens"
METRICS_PATH = "/metrics"  # lists session ids: behind the API key when auth is on
MAX_SESSION_BODY_BYTES = 16 * 1024  # a POST /v1/sessions body is a few fields of JSON
# A request body over its limit is still read (and dropped) up to this much past it
# before the 413, so the client reads the answer instead of a reset connection.
DRAIN_BYTES = 8 * 1024 * 1024
#: ASGI scope key under which the guard leaves the token's identity for the routes:
#: the sessions a token opens are its own
OWNER_KEY = "headcast.token"
#: and the one session a session-bound token may use besides those it opened
GRANT_KEY = "headcast.session"
_SESSION_PATH = re.compile(r"/v1/sessions/([^/]+)(?:/.*)?")
# what a token may GET besides its sessions (the demo page and widget read all three)
TOKEN_READS = ("/v1/avatars", "/v1/client/config", "/v1/voices")
#: refused credentials one client address may send per window before it must wait (429):
#: guessing keys or tokens online gets nowhere, a page with a stale token is not blocked
MAX_FAILURES = 30
FAILURE_WINDOW_S = 60.0
MAX_TRACKED_CLIENTS = 10_000

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _credential(scope: Scope) -> str | None:
    auth = header(scope, b"authorization")
    if auth is not None and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    values = query.get("token")
    return values[0] if values else None


class _BodyTooLarge(ValueError):
    """A session request too large to check (413, not a refused credential)."""


class FailureLimit:
    """Refused credentials per client address over a sliding window (bounded memory)."""

    def __init__(self, limit: int = MAX_FAILURES, window_s: float = FAILURE_WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._times: dict[str, deque[float]] = {}

    def wait_s(self, client: str, now: float) -> float:
        """Seconds ``client`` must wait before it may try again (0: it may)."""
        times = self._times.get(client)
        if times is None:
            return 0.0
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._times[client]
            return 0.0
        return times[0] + self.window_s - now if len(times) >= self.limit else 0.0

    def failed(self, client: str, now: float) -> None:
        if client not in self._times and len(self._times) >= MAX_TRACKED_CLIENTS:
            self._times.pop(next(iter(self._times)))  # the longest-tracked one
        self._times.setdefault(client, deque(maxlen=self.limit)).append(now)


class AuthGuard:
    """ASGI middleware: API key or token on every ``/v1/`` request when auth is on.

    It sits inside the CORS middleware so that its 401s carry CORS headers and a page
    on another origin can read the reason.
    """

    def __init__(self, app: ASGIApp, settings: ServerSettings) -> None:
        self.app = app
        self.settings = settings
        self.secret = signing_secret(settings)
        self.api_key = (settings.api_key or "").encode("utf-8")
        self.failures = FailureLimit()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        path = str(scope.get("path", ""))
        if (
            self.secret is None
            or kind not in ("http", "websocket")
            or not (path.startswith(PROTECTED_PREFIX) or path == METRICS_PATH)
            or (kind == "http" and scope.get("method") == "OPTIONS")
        ):
            await self.app(scope, receive, send)
            return
        # The client address is the peer's, or the one a trusted proxy forwarded
        # (server.api.client_address); a spoofed X-Forwarded-For does not change it.
        client = str((scope.get("client") or ("?",))[0])
        credential = _credential(scope)
        if credential is not None and hmac.compare_digest(credential.encode("utf-8"), self.api_key):
            # the site's backend: full access, even while guesses from its address wait
            await self.app(scope, receive, send)
            return
        wait = self.failures.wait_s(client, time.monotonic())
        if wait > 0:
            reason = f"too many refused credentials from {client}; try again in {wait:.0f} s"
            await refuse(scope, send, reason, 429, retry_after=wait)
            return
        try:
            if credential is None and path.startswith(TOKEN_PATH):
                raise TokenError(
                    "minting tokens needs the server's API key: "
                    "Authorization: Bearer <api_key from its settings>"
                )
            if credential is None and path == METRICS_PATH:
                raise TokenError(
                    "metrics need the server's API key: Authorization: Bearer <api_key>"
                )
            if credential is None:
                raise TokenError(
                    "this server needs a session token: pass Authorization: Bearer <token> "
                    "or ?token=<token>"
                )
            if path.startswith(TOKEN_PATH):
                raise TokenError("minting tokens needs the server's API key; this is not it")
            if credential.count(".") != 1:  # no token has this shape: a wrong API key
                raise TokenError("this is neither the server's API key nor a session token")
            claims = verify(self.secret, credential)
            check_origin(claims, header(scope, b"origin"))
            owner = claims.jti
            scope[OWNER_KEY] = owner
            scope[GRANT_KEY] = claims.session
            method = scope.get("method") if kind == "http" else "GET"
            route = path.rstrip("/")
            opens = method == "POST" and route in ("/v1/whep", "/v1/sessions")
            if claims.session is not None and opens:
                raise ScopeError(
                    f"this token is for session {claims.session}; it cannot open others"
                )
            if method == "POST" and route == "/v1/whep":
                check_avatar(claims, "default")
            elif method == "POST" and route == "/v1/sessions":
                receive = await self._check_session_body(claims, receive)
            elif _SESSION_PATH.fullmatch(route) is None and not (
                method == "GET" and route in TOKEN_READS
            ):  # a session's own paths: its lookup checks it is this token's (403)
                raise ScopeError(
                    f"a session token cannot use {method} {route}; that needs the API key"
                )
        except ScopeError as exc:
            await refuse(scope, send, str(exc), 403)
            return
        except _BodyTooLarge as exc:  # the token was fine: not a refused credential
            await refuse(scope, send, str(exc), 413, challenge=False)
            return
        except TokenError as exc:
            if credential is not None:  # a wrong key or token, not a missing one
                self.failures.failed(client, time.monotonic())
            await refuse(scope, send, str(exc), 401)
            return
        await self.app(scope, receive, send)

    async def _check_session_body(self, claims: Claims, receive: Receive) -> Receive:
        """Read the (small) session request, check its avatar, and replay it downstream."""
        body = await read_within(receive, MAX_SESSION_BODY_BYTES)
        if body is None:
            raise _BodyTooLarge(f"JSON body larger than {MAX_SESSION_BODY_BYTES} bytes")
        if claims.avatar is not None:
            try:
                avatar = json.loads(body or b"{}").get("avatar", "default")
            except (ValueError, AttributeError):
                avatar = "default"  # the endpoint itself answers 422 on bad JSON
            check_avatar(claims, str(avatar))
        return replay(body, receive)


async def read_within(receive: Receive, limit: int) -> bytes | None:
    """A request's whole body from ASGI ``receive`` (what came, if the client went away);
    None when it passes ``limit`` bytes: then it is read and dropped up to
    :data:`DRAIN_BYTES` past the limit, so the client reads the refusal, and cut off past
    that."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return b"".join(chunks)
        size += len(message.get("body", b""))
        more = bool(message.get("more_body", False))
        if size > limit:
            chunks = []
            if not more or size > limit + DRAIN_BYTES:
                return None
            continue
        chunks.append(message.get("body", b""))
        if not more:
            return b"".join(chunks)


def replay(body: bytes, then: Receive | None = None) -> Receive:
    """An ASGI ``receive`` that hands out ``body`` once, as one message, then waits on
    ``then`` (the client's disconnect) or, without it, says the client went away."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await then() if then is not None else {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def refuse(
    scope: Scope,
    send: Send,
    reason: str,
    status: int = 401,
    retry_after: float | None = None,
    challenge: bool = True,
) -> None:
    """Answer an HTTP request with ``{"detail": reason}``, or refuse a WebSocket's
    handshake (closing before accept makes the server answer it with 403)."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
        return
    body = json.dumps({"detail": reason}).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    if challenge:
        headers.append((b"www-authenticate", b'Bearer realm="headcast"'))
    if retry_after is not None:
        headers.append((b"retry-after", str(math.ceil(retry_after)).encode("ascii")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def token_grant(conn: HTTPConnection) -> str | None:
    """The session a session-bound token was minted for (None: any it opened)."""
    grant = conn.scope.get(GRANT_KEY)
    return str(grant) if grant is not None else None


def token_owner(conn: HTTPConnection) -> str | None:
    """The identity of the token a request or WebSocket came with (None: the API key,
    or auth off)."""
    owner = conn.scope.get(OWNER_KEY)
    return str(owner) if owner is not None else None


class _MaskTokens(logging.Filter):
    """Log lines without the credentials a query string or header may carry.

    Installed on uvicorn's access log (HTTP lines) and its error log, where WebSocket
    handshakes are logged with their query string.
    """

    _TOKEN = re.compile(r"((?:token|api_key|key)=)[^&\s\"']+|(Bearer\s+)[^\s\"']+", re.I)

    @classmethod
    def mask(cls, text: str) -> str:
        return cls._TOKEN.sub(lambda m: (m.group(1) or m.group(2)) + "***", text)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self.mask(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self.mask(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: self.mask(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        return True


#: loggers whose lines may quote a request's URL
MASKED_LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn", "websockets", "server")


def install(app: Any, settings: ServerSettings) -> None:
    """Add the guard to ``app`` (call before adding CORS so CORS wraps it)."""
    app.add_middleware(AuthGuard, settings=settings)
    for name in MASKED_LOGGERS:
        log = logging.getLogger(name)
        if not any(isinstance(f, _MaskTokens) for f in log.filters):
            log.addFilter(_MaskTokens())
