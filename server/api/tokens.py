"""Short-lived session tokens: their format, and the endpoint that mints them.

A site's backend holds the server's API key and mints tokens for its pages:

    POST /v1/tokens  Authorization: Bearer <api key>
    {"origin": "https://shop.example", "avatar": "alice", "ttl_s": 300}
    -> {"token": "<payload>.<signature>", "expires_at": 1767225600.0, ...}

A token is ``base64url(JSON claims) "." base64url(HMAC-SHA256(secret, payload))``
(the compact shape of a JWS, RFC 7515, without its header). The secret is
``token_secret`` from the settings or, if unset, derived from the API key, so every
process configured with the same key accepts the same tokens. Claims: ``exp`` (unix
seconds), ``jti`` (a random identifier of 128 bits, RFC 7519's name: two tokens
minted in the same millisecond for the same page are still two owners), ``origin``
(the page origin allowed to use it, or absent = any), ``avatar`` (the only avatar it
may open, or absent = any). :mod:`server.api.auth` checks them; the sessions a token
opens belong to its ``jti``.

``exp`` is honoured up to ``CLOCK_SKEW_S`` (5 s) late: hosts sharing a secret need
not have exactly the same clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from headcast.server.live.avatar_dir import AVATAR_NAME, NAME_RULE, shown
from headcast.server.settings import ServerSettings
from headcast.server.state import get_state

router = APIRouter(prefix="/v1/tokens", tags=["auth"])

MIN_TTL_S = 5.0
DEFAULT_TTL_S = 300.0
CLOCK_SKEW_S = 5.0  # tolerated lateness of "exp" between hosts sharing a secret
MAX_TOKEN_CHARS = 2048
SECRET_LABEL = b"headcast session tokens v1"
JTI_BYTES = 16  # 128 random bits: collisions are out of reach for any number of pages
_JTI = re.compile(r"[A-Za-z0-9_-]{22,64}")


class TokenError(ValueError):
    """A token that does not grant access; the message says why, for the user."""


class ScopeError(TokenError):
    """A valid token used for something only the API key may do (403)."""


def new_jti() -> str:
    """A fresh token identifier: 128 random bits, base64url (22 characters)."""
    return secrets.token_urlsafe(JTI_BYTES)


@dataclass(frozen=True)
class Claims:
    exp: float
    origin: str | None = None
    avatar: str | None = None
    jti: str = field(default_factory=new_jti)
    #: the one session it may use (a session its back end opened); it opens none itself
    session: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signing_secret(settings: ServerSettings) -> bytes | None:
    """The HMAC key, or None when auth is off (no API key configured)."""
    if not settings.api_key:
        return None
    if settings.token_secret:
        return settings.token_secret.encode("utf-8")
    return hmac.new(settings.api_key.encode("utf-8"), SECRET_LABEL, hashlib.sha256).digest()


def mint(secret: bytes, claims: Claims) -> str:
    """Sign ``claims`` into a token string."""
    body: dict[str, Any] = {"exp": round(claims.exp, 3), "jti": claims.jti}
    if claims.origin is not None:
        body["origin"] = claims.origin
    if claims.avatar is not None:
        body["avatar"] = claims.avatar
    if claims.session is not None:
        body["session"] = claims.session
    payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8"))
    sig = hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest()
    return f"{payload}.{_b64(sig)}"


def verify(secret: bytes, token: str, *, now: float | None = None) -> Claims:
    """Claims of a valid token; :class:`TokenError` saying why otherwise."""
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise TokenError("malformed token")
    payload, sig = token.split(".")
    try:
        given = _unb64(sig)
    except (binascii.Error, ValueError) as exc:
        raise TokenError("malformed token") from exc
    if _b64(given) != sig:  # one spelling per token: its signature is its identity
        raise TokenError("malformed token")
    expected = hmac.new(secret, payload.encode("ascii", "replace"), hashlib.sha256).digest()
    if not hmac.compare_digest(given, expected):
        raise TokenError("token signature is not valid for this server")
    try:
        body = json.loads(_unb64(payload))
        claims = Claims(
            exp=float(body["exp"]),
            origin=body.get("origin"),
            avatar=body.get("avatar"),
            jti=body.get("jti"),
            session=body.get("session"),
        )
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TokenError("malformed token") from exc
    if not isinstance(claims.jti, str) or not _JTI.fullmatch(claims.jti):
        raise TokenError("malformed token: it has no identifier; ask the site for a new one")
    now = time.time() if now is None else now
    if claims.exp + CLOCK_SKEW_S < now:
        raise TokenError(f"token expired {now - claims.exp:.0f} s ago; ask the site for a new one")
    return claims


def check_origin(claims: Claims, origin: str | None) -> None:
    """A browser's ``Origin`` must be the one the token was minted for.

    Requests without ``Origin`` come from non-browser clients (or same-origin GETs),
    which could send any header anyway; the signature and expiry still apply.
    """
    if claims.origin is not None and origin is not None and origin != claims.origin:
        raise TokenError(f"token was issued for {claims.origin}, not for {origin}")


def check_avatar(claims: Claims, avatar: str) -> None:
    if claims.avatar is not None and avatar != claims.avatar:
        raise TokenError(f"token allows avatar {claims.avatar!r} only, not {avatar!r}")


# ---- the token endpoint --------------------------------------------------------------


class TokenRequest(BaseModel):
    """Body of ``POST /v1/tokens``; every field optional."""

    model_config = ConfigDict(extra="forbid")

    ttl_s: float = Field(DEFAULT_TTL_S, ge=MIN_TTL_S, description="seconds until it expires")
    origin: str | None = Field(None, description="page origin allowed to use it, e.g. https://a.b")
    avatar: str | None = Field(None, description="the one avatar it may open; None = any")
    session: str | None = Field(
        None, description="the one session it may use (one the back end opened); opens none"
    )


@router.post("", status_code=201)
async def create_token(req: TokenRequest, request: Request) -> dict[str, Any]:
    """Mint a session token (needs the API key; the guard has already checked it)."""
    settings = get_state(request).settings
    secret = signing_secret(settings)
    if secret is None:
        raise HTTPException(404, "tokens are off: the server has no api_key configured")
    if req.ttl_s > settings.token_max_ttl_s:
        raise HTTPException(400, f"ttl_s may be at most {settings.token_max_ttl_s:g} s")
    if req.avatar is not None and not AVATAR_NAME.fullmatch(req.avatar):
        raise HTTPException(400, f"invalid avatar name {shown(req.avatar)}: {NAME_RULE}")
    if req.origin is not None and (
        "://" not in req.origin or req.origin.endswith("/") or req.origin.count("/") != 2
    ):
        raise HTTPException(400, "origin must be scheme://host[:port] with no path")
    if req.session is not None and req.session not in get_state(request).sessions:
        raise HTTPException(404, f"unknown session {req.session!r}")
    claims = Claims(
        exp=time.time() + req.ttl_s, origin=req.origin, avatar=req.avatar, session=req.session
    )
    return {
        "token": mint(secret, claims),
        "expires_at": claims.exp,
        "origin": claims.origin,
        "avatar": claims.avatar,
        "session": claims.session,
    }
