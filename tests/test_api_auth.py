"""Session tokens: minting, validation, and the guard on a real server (no browser)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from headcast.server.api.tokens import (
    Claims,
    TokenError,
    check_avatar,
    check_origin,
    mint,
    signing_secret,
    verify,
)
from tests.server_harness import FIXTURES, TEST_SIZE, ServerThread, free_port

SECRET = b"test-secret"
API_KEY = "test-api-key-0123456789"
SITE = "http://127.0.0.1:9999"


def test_round_trip_keeps_claims() -> None:
    claims = Claims(exp=time.time() + 60, origin=SITE, avatar="alice")
    got = verify(SECRET, mint(SECRET, claims))
    assert got.origin == SITE and got.avatar == "alice"
    assert abs(got.exp - claims.exp) < 1e-3


def test_expired_token_is_refused_with_reason() -> None:
    token = mint(SECRET, Claims(exp=time.time() - 60))
    with pytest.raises(TokenError, match="expired"):
        verify(SECRET, token)


def test_token_of_another_server_is_refused() -> None:
    token = mint(b"other-secret", Claims(exp=time.time() + 60))
    with pytest.raises(TokenError, match="signature"):
        verify(SECRET, token)


def test_tampered_payload_is_refused() -> None:
    token = mint(SECRET, Claims(exp=time.time() + 60, avatar="alice"))
    forged = mint(SECRET, Claims(exp=time.time() + 60)).split(".")[0] + "." + token.split(".")[1]
    with pytest.raises(TokenError, match="signature"):
        verify(SECRET, forged)


@pytest.mark.parametrize("junk", ["", "abc", "a.b.c", "!!.??", "x" * 5000])
def test_malformed_tokens_are_refused(junk: str) -> None:
    with pytest.raises(TokenError):
        verify(SECRET, junk)


def test_origin_and_avatar_limits() -> None:
    claims = Claims(exp=time.time() + 60, origin=SITE, avatar="alice")
    check_origin(claims, SITE)
    check_origin(claims, None)  # non-browser client
    with pytest.raises(TokenError, match="issued for"):
        check_origin(claims, "http://evil.example")
    check_avatar(claims, "alice")
    with pytest.raises(TokenError, match="alice"):
        check_avatar(claims, "default")
    check_avatar(Claims(exp=0.0), "anything")


# ---- the guard on a live server --------------------------------------------------------


def _settings(port: int, **extra: Any) -> Any:
    from headcast.server.settings import ServerSettings

    return ServerSettings(
        host="127.0.0.1",
        port=port,
        default_size=TEST_SIZE,
        allowed_sizes=(TEST_SIZE,),
        avatars_dir=FIXTURES / "no-avatars",
        cors_origins=(SITE,),
        **extra,
    )


def _fake_motion() -> dict[str, Any]:
    from tests.browser_support import LoudnessMotion, LoudnessStreamer

    return {"motion_loader": LoudnessMotion, "streamer_factory": LoudnessStreamer}


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerThread]:
    with ServerThread(_settings(free_port(), api_key=API_KEY), **_fake_motion()) as server:
        yield server


def call(
    srv: ServerThread,
    method: str,
    path: str,
    body: Any = None,
    bearer: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(srv.url + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if bearer:
        req.add_header("Authorization", f"Bearer {bearer}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            raw, status, hdrs = resp.read(), resp.status, dict(resp.headers.items())
    except urllib.error.HTTPError as exc:
        raw, status, hdrs = exc.read(), exc.code, dict(exc.headers.items())
    return status, (json.loads(raw) if raw else None), hdrs


def token(srv: ServerThread, **claims: Any) -> str:
    status, body, _ = call(srv, "POST", "/v1/tokens", claims, bearer=API_KEY)
    assert status == 201, body
    return str(body["token"])


def test_missing_token_is_refused_with_reason(srv: ServerThread) -> None:
    status, body, headers = call(srv, "GET", "/v1/avatars")
    assert status == 401
    assert "token" in body["detail"]
    assert headers.get("www-authenticate", "").startswith("Bearer")


def test_a_wrong_api_key_is_called_that(srv: ServerThread) -> None:
    status, body, _ = call(srv, "GET", "/v1/avatars", bearer="not-the-key")
    assert status == 401 and "neither the server's API key nor a session token" in body["detail"]
    status, body, _ = call(srv, "GET", "/metrics")
    assert status == 401 and "API key" in body["detail"], body


def test_a_token_holders_oversized_session_body_is_a_413_not_a_refused_token(
    srv: ServerThread,
) -> None:
    mine = token(srv)
    for _ in range(30):  # more than the refused-credential limit: none of them counts
        status, body, _ = call(srv, "POST", "/v1/sessions", {"avatar": "a" * 20_000}, bearer=mine)
        assert status == 413 and "larger than" in body["detail"], body
    assert call(srv, "GET", "/v1/avatars", bearer=mine)[0] == 200


def test_public_paths_need_no_token(srv: ServerThread) -> None:
    assert call(srv, "GET", "/healthz")[0] == 200
    req = urllib.request.urlopen(srv.url + "/headcast.js", timeout=10)
    assert req.status == 200 and "javascript" in req.headers["content-type"]


def test_minting_needs_the_api_key(srv: ServerThread) -> None:
    status, body, _ = call(srv, "POST", "/v1/tokens", {}, bearer="wrong")
    assert status == 401
    status, body, _ = call(srv, "POST", "/v1/tokens", {}, bearer=token(srv))
    assert status == 401 and "API key" in body["detail"]
    status, body, _ = call(srv, "POST", "/v1/tokens", {"ttl_s": 1e9}, bearer=API_KEY)
    assert status == 400 and "ttl_s" in body["detail"]
    status, body, _ = call(srv, "POST", "/v1/tokens", {"origin": "x"}, bearer=API_KEY)
    assert status == 400


def test_token_opens_and_closes_a_session(srv: ServerThread) -> None:
    t = token(srv, origin=SITE, avatar="default", ttl_s=60)
    status, session, _ = call(srv, "POST", "/v1/sessions", {}, bearer=t, headers={"Origin": SITE})
    assert status == 201, session
    status, _, headers = call(
        srv, "DELETE", f"/v1/sessions/{session['id']}", bearer=t, headers={"Origin": SITE}
    )
    assert status == 204
    assert headers.get("access-control-allow-origin") == SITE


def test_foreign_origin_is_refused_and_the_reason_is_readable_cross_origin(
    srv: ServerThread,
) -> None:
    t = token(srv, origin=SITE)
    status, body, _ = call(
        srv, "GET", "/v1/avatars", bearer=t, headers={"Origin": "http://evil.example"}
    )
    assert status == 401 and "issued for" in body["detail"]
    # A page of the allowed origin gets CORS headers on refusals too (so it can show them).
    bad = mint(b"other", Claims(exp=time.time() + 60))
    status, body, headers = call(srv, "GET", "/v1/avatars", bearer=bad, headers={"Origin": SITE})
    assert status == 401 and "signature" in body["detail"]
    assert headers.get("access-control-allow-origin") == SITE


def test_avatar_limit_is_enforced_when_opening_sessions(srv: ServerThread) -> None:
    t = token(srv, avatar="alice")
    status, body, _ = call(srv, "POST", "/v1/sessions", {"avatar": "default"}, bearer=t)
    assert status == 401 and "alice" in body["detail"]
    status, body, _ = call(srv, "POST", "/v1/avatars?name=x", {}, bearer=t)
    assert status == 403 and "needs the API key" in body["detail"]


def test_a_token_reaches_only_the_sessions_it_opened(srv: ServerThread) -> None:
    """A page's token opens sessions and uses those; another page's token, listing
    sessions, renders and uploads need the API key (403 with the reason)."""
    mine, theirs = token(srv), token(srv)
    _, own, _ = call(srv, "POST", "/v1/sessions", {}, bearer=mine)
    _, backend, _ = call(srv, "POST", "/v1/sessions", {}, bearer=API_KEY)
    sid = own["id"]
    assert call(srv, "GET", f"/v1/sessions/{sid}", bearer=mine)[0] == 200
    control = {"type": "ping"}
    assert call(srv, "POST", f"/v1/sessions/{sid}/control", control, bearer=mine)[0] == 200
    for other, target in ((theirs, sid), (mine, backend["id"])):
        for method, path, body in (
            ("GET", f"/v1/sessions/{target}", None),
            ("POST", f"/v1/sessions/{target}/control", control),
            ("DELETE", f"/v1/sessions/{target}", None),
        ):
            status, reply, _ = call(srv, method, path, body, bearer=other)
            assert status == 403 and "not opened with this token" in reply["detail"], path
    for method, path in (("GET", "/v1/sessions"), ("GET", "/v1/renders"), ("GET", "/v1/nope")):
        status, reply, _ = call(srv, method, path, bearer=mine)
        assert status == 403 and "needs the API key" in reply["detail"], path
    # what the demo page and the widget read with a token
    for path in ("/v1/avatars", "/v1/client/config", "/v1/voices"):
        assert call(srv, "GET", path, bearer=mine)[0] == 200, path
    assert call(srv, "GET", "/v1/sessions", bearer=API_KEY)[0] == 200
    # one spelling per token: padding or junk after the signature is not the same token
    assert call(srv, "GET", f"/v1/sessions/{sid}", bearer=mine + "=")[0] == 401
    assert call(srv, "DELETE", f"/v1/sessions/{sid}", bearer=mine)[0] == 204
    call(srv, "DELETE", f"/v1/sessions/{backend['id']}", bearer=API_KEY)


def test_weak_keys_are_refused_and_query_credentials_are_masked_in_logs() -> None:
    import logging

    from pydantic import ValidationError

    from headcast.server.api.auth import _MaskTokens

    for weak in ("", "short-key"):
        with pytest.raises(ValidationError, match="at least 16"):
            _settings(free_port(), api_key=weak)
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/v1/sessions/x/ws?a=1&token=abc.def", "1.1", 101), None,
    )  # fmt: skip
    assert _MaskTokens().filter(record)
    assert "abc.def" not in record.getMessage() and "token=***" in record.getMessage()


def test_expired_token_is_refused_by_the_server(srv: ServerThread) -> None:
    secret = signing_secret(srv.settings)
    assert secret is not None
    expired = mint(secret, Claims(exp=time.time() - 30))
    status, body, _ = call(srv, "GET", "/v1/avatars", bearer=expired)
    assert status == 401 and "expired" in body["detail"]
    assert call(srv, "GET", "/v1/avatars", bearer=token(srv, ttl_s=5))[0] == 200


def session_socket_url(srv: ServerThread, sid: str) -> str:
    return srv.url.replace("http", "ws") + f"/v1/sessions/{sid}/ws"


def ws_start(url: str) -> str:
    """Open a session's WebSocket at ``url``, send ``start``: the first reply's type
    (``websockets.exceptions.InvalidStatus`` when the handshake is refused)."""

    async def attempt() -> str:
        async with websockets.connect(url, open_timeout=10) as ws:
            await ws.send(json.dumps({"type": "start"}))
            return str(json.loads(await asyncio.wait_for(ws.recv(), 10))["type"])

    return asyncio.run(attempt())


def test_websocket_needs_a_token(srv: ServerThread) -> None:
    t = token(srv)
    _, session, _ = call(srv, "POST", "/v1/sessions", {}, bearer=t)
    ws_url = session_socket_url(srv, session["id"])
    with pytest.raises(websockets.exceptions.InvalidStatus):
        ws_start(ws_url)
    assert ws_start(f"{ws_url}?token={t}") == "ready"
    call(srv, "DELETE", f"/v1/sessions/{session['id']}", bearer=API_KEY)


def test_auth_is_off_without_an_api_key() -> None:
    with ServerThread(_settings(free_port()), **_fake_motion()) as server:
        assert call(server, "GET", "/v1/avatars")[0] == 200
        status, body, _ = call(server, "POST", "/v1/tokens", {}, bearer="x")
        assert status == 404 and "api_key" in body["detail"]


def test_python_client_uses_its_token_on_the_websocket(srv: ServerThread) -> None:
    from headcast.client.headcast_client import HeadcastClient

    async def session_socket() -> str:
        client = HeadcastClient(srv.url, token=token(srv))
        session = await client.create_session()
        sock = await asyncio.wait_for(client.connect(session["id"]), 10)
        kind = str(sock.ready["type"])
        await sock.close()
        await client.close_session(session["id"])
        return kind

    assert asyncio.run(session_socket()) == "ready"


def test_guessing_credentials_online_is_throttled() -> None:
    """After MAX_FAILURES refused credentials in a window, a client address waits (429 with
    Retry-After) except with the API key; other addresses and the window's end free it."""
    from headcast.server.api.auth import FAILURE_WINDOW_S, MAX_FAILURES, FailureLimit

    limit = FailureLimit()
    for i in range(MAX_FAILURES):
        assert limit.wait_s("10.0.0.1", 100.0 + i * 0.01) == 0.0
        limit.failed("10.0.0.1", 100.0 + i * 0.01)
    assert limit.wait_s("10.0.0.1", 101.0) == pytest.approx(FAILURE_WINDOW_S - 1.0)
    assert limit.wait_s("10.0.0.2", 101.0) == 0.0
    assert limit.wait_s("10.0.0.1", 100.0 + FAILURE_WINDOW_S + 0.5) == 0.0

    settings = _settings(free_port(), api_key=API_KEY)
    with ServerThread(settings, **_fake_motion()) as server:
        for _ in range(MAX_FAILURES):
            assert call(server, "GET", "/v1/avatars", bearer="wrong-key-0123456789")[0] == 401
        status, body, headers = call(server, "GET", "/v1/avatars", bearer="wrong-key-0123456789")
        retry = {k.lower(): v for k, v in headers.items()}.get("retry-after")
        assert status == 429 and "too many refused" in body["detail"] and retry is not None
        assert call(server, "GET", "/v1/avatars", bearer=token(server))[0] == 429
        # the site's back end shares the address of whoever guessed: its key still works
        assert call(server, "GET", "/v1/avatars", bearer=API_KEY)[0] == 200
        # a made-up X-Forwarded-For is not a new address (no trusted proxies)
        spoofed = {"X-Forwarded-For": "203.0.113.9"}
        assert call(server, "GET", "/v1/avatars", bearer="wrong", headers=spoofed)[0] == 429
