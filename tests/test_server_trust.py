"""Trust: token identity, credentials in logs, cross-site requests, proxies, metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import websockets

from headcast.server.api.client_address import forwarded_client, parse_networks
from headcast.server.api.origin_guard import is_json
from headcast.server.api.tokens import Claims, mint, signing_secret, verify
from tests.server_harness import ServerThread, free_port
from tests.test_api_auth import (
    API_KEY,
    SITE,
    _fake_motion,
    _settings,
    call,
    session_socket_url,
    token,
    ws_start,
)

EVIL = "https://evil.example"
TOKENS_MINTED = 2000


@pytest.fixture(scope="module")
def secured() -> Iterator[ServerThread]:
    with ServerThread(_settings(free_port(), api_key=API_KEY), **_fake_motion()) as server:
        yield server


@pytest.fixture(scope="module")
def open_server() -> Iterator[ServerThread]:
    """No API key: a developer's machine."""
    with ServerThread(_settings(free_port()), **_fake_motion()) as server:
        yield server


def raw_post(srv: ServerThread, path: str, body: bytes, content_type: str, **headers: str) -> int:
    return call_raw(srv, "POST", path, body, {"Content-Type": content_type, **headers})


def call_raw(
    srv: ServerThread, method: str, path: str, body: bytes, headers: dict[str, str]
) -> int:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(srv.url + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


# ---- token identity -------------------------------------------------------------------


def test_tokens_minted_in_the_same_instant_are_distinct() -> None:
    secret = b"s" * 32
    exp = time.time() + 60
    tokens = {mint(secret, Claims(exp=exp, origin=SITE)) for _ in range(10_000)}
    assert len(tokens) == 10_000
    jtis = {verify(secret, t).jti for t in tokens}
    assert len(jtis) == 10_000 and all(len(j) >= 22 for j in jtis)  # 128 bits, base64url


def test_a_token_without_identifier_is_refused() -> None:
    import base64
    import hashlib
    import hmac

    from headcast.server.api.tokens import TokenError

    secret = b"s" * 32
    payload = base64.urlsafe_b64encode(json.dumps({"exp": time.time() + 60}).encode())
    payload_s = payload.rstrip(b"=").decode()
    sig = hmac.new(secret, payload_s.encode(), hashlib.sha256).digest()
    legacy = payload_s + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()
    with pytest.raises(TokenError, match="identifier"):
        verify(secret, legacy)


def test_concurrently_minted_tokens_are_unique_and_isolated(secured: ServerThread) -> None:
    def one(_: int) -> str:
        status, body, _h = call(secured, "POST", "/v1/tokens", {"ttl_s": 300}, bearer=API_KEY)
        assert status == 201, body
        return str(body["token"])

    with ThreadPoolExecutor(32) as pool:
        tokens = list(pool.map(one, range(TOKENS_MINTED)))
    assert len(set(tokens)) == TOKENS_MINTED
    # same expiry to the millisecond, same claims: still two owners
    secret = signing_secret(secured.settings)
    assert secret is not None
    exp = time.time() + 60
    a, b = mint(secret, Claims(exp=exp)), mint(secret, Claims(exp=exp))
    status, session, _ = call(secured, "POST", "/v1/sessions", {}, bearer=a)
    assert status == 201, session
    sid = session["id"]
    assert call(secured, "GET", f"/v1/sessions/{sid}", bearer=b)[0] == 403
    assert call(secured, "DELETE", f"/v1/sessions/{sid}", bearer=b)[0] == 403
    assert (
        call(secured, "POST", f"/v1/sessions/{sid}/control", {"type": "ping"}, bearer=b)[0] == 403
    )
    ws_url = secured.url.replace("http", "ws") + f"/v1/sessions/{sid}/ws"

    async def socket(token: str) -> str:
        async with websockets.connect(f"{ws_url}?token={token}", open_timeout=10) as ws:
            await ws.send(json.dumps({"type": "start"}))
            return str(json.loads(await asyncio.wait_for(ws.recv(), 10))["type"])

    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        asyncio.run(socket(b))
    assert refused.value.response.status_code == 403
    assert asyncio.run(socket(a)) == "ready"
    assert call(secured, "GET", f"/v1/sessions/{sid}", bearer=a)[0] == 200
    assert call(secured, "DELETE", f"/v1/sessions/{sid}", bearer=a)[0] == 204


# ---- credentials in logs --------------------------------------------------------------


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_no_log_line_carries_a_credential(secured: ServerThread) -> None:
    names = ("uvicorn.error", "uvicorn.access")
    handler = _Lines()
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).addHandler(handler)
        logging.getLogger(n).setLevel(logging.INFO)
    try:
        t = token(secured)
        _, session, _ = call(secured, "POST", "/v1/sessions", {}, bearer=t)
        ws_url = session_socket_url(secured, session["id"])
        ws_start(f"{ws_url}?token={t}")
        with pytest.raises(websockets.exceptions.InvalidStatus):  # a refused handshake too
            ws_start(f"{ws_url}?token={t}x")
        call(secured, "GET", f"/v1/avatars?token={t}")
        call(secured, "DELETE", f"/v1/sessions/{session['id']}", bearer=API_KEY)
        time.sleep(0.3)
    finally:
        for n in names:
            logging.getLogger(n).removeHandler(handler)
            logging.getLogger(n).setLevel(levels[n])
    websocket_lines = [line for line in handler.lines if "WebSocket" in line]
    assert websocket_lines, handler.lines  # the handshakes were logged ...
    signature = t.split(".")[1]
    for line in handler.lines:  # ... without the token
        assert signature not in line and t.split(".")[0] not in line, line
        assert API_KEY not in line, line


# ---- cross-site requests --------------------------------------------------------------


def test_pages_on_other_origins_cannot_change_state(open_server: ServerThread) -> None:
    srv = open_server
    # a "simple" request a browser sends without preflight
    assert raw_post(srv, "/v1/renders", b"RIFF....", "text/plain", Origin=EVIL) == 403
    assert raw_post(srv, "/v1/sessions", b"", "text/plain", Origin=EVIL) == 403
    assert call_raw(srv, "DELETE", "/v1/sessions/x", b"", {"Origin": EVIL}) == 403
    assert raw_post(srv, "/v1/sessions", b"{}", "application/json", Origin="null") == 403
    status, body, _ = call(srv, "POST", "/v1/sessions", {}, headers={"Origin": EVIL})
    assert status == 403 and "cors_origins" in body["detail"]
    # reading is not changing state; CORS keeps the answer from the page
    assert call(srv, "GET", "/v1/avatars", headers={"Origin": EVIL})[0] == 200
    # allowed: a listed origin, the server's own page, and programs (no Origin)
    for origin in (SITE, srv.url, None):
        headers = {"Origin": origin} if origin else {}
        status, session, _ = call(srv, "POST", "/v1/sessions", {}, headers=headers)
        assert status == 201, (origin, session)
        assert call(srv, "DELETE", f"/v1/sessions/{session['id']}", headers=headers)[0] == 204


def test_websockets_from_other_origins_are_refused(open_server: ServerThread) -> None:
    srv = open_server
    _, session, _ = call(srv, "POST", "/v1/sessions", {})
    ws_url = srv.url.replace("http", "ws") + f"/v1/sessions/{session['id']}/ws"

    async def attempt(origin: str) -> str:
        async with websockets.connect(ws_url, origin=origin, open_timeout=10) as ws:  # type: ignore[arg-type]
            await ws.send(json.dumps({"type": "start"}))
            return str(json.loads(await asyncio.wait_for(ws.recv(), 10))["type"])

    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        asyncio.run(attempt(EVIL))
    assert refused.value.response.status_code == 403
    assert asyncio.run(attempt(SITE)) == "ready"
    call(srv, "DELETE", f"/v1/sessions/{session['id']}")


def test_json_endpoints_need_the_json_content_type(open_server: ServerThread) -> None:
    srv = open_server
    assert raw_post(srv, "/v1/sessions", b"{}", "text/plain") == 415
    assert raw_post(srv, "/v1/sessions", b"{}", "application/json; charset=utf-8") == 201
    _, session, _ = call(srv, "POST", "/v1/sessions", {})
    control = f"/v1/sessions/{session['id']}/control"
    assert raw_post(srv, control, b'{"type":"ping"}', "text/plain") == 415
    assert raw_post(srv, control, b'{"type":"ping"}', "application/json") == 200
    call(srv, "DELETE", f"/v1/sessions/{session['id']}")
    assert is_json("application/vnd.api+json") and not is_json("text/json")


# ---- proxies and metrics --------------------------------------------------------------


def test_forwarded_addresses_count_only_from_trusted_proxies() -> None:
    nets = parse_networks(["10.0.0.0/8", "127.0.0.1"])
    assert forwarded_client("127.0.0.1", "203.0.113.5", nets) == "203.0.113.5"
    # the left-most entries are whatever the client wrote: the proxy's view counts
    assert forwarded_client("127.0.0.1", "1.2.3.4, 203.0.113.5, 10.1.1.1", nets) == "203.0.113.5"
    assert forwarded_client("198.51.100.7", "203.0.113.5", nets) == "198.51.100.7"
    assert forwarded_client("127.0.0.1", None, nets) == "127.0.0.1"
    assert forwarded_client("::1", "203.0.113.5", parse_networks([])) == "::1"
    with pytest.raises(ValueError, match="trusted_proxies"):
        _settings(free_port(), trusted_proxies=("not-an-address",))


def test_throttling_follows_the_address_a_trusted_proxy_names() -> None:
    from headcast.server.api.auth import MAX_FAILURES

    settings = _settings(free_port(), api_key=API_KEY, trusted_proxies=("127.0.0.1",))
    with ServerThread(settings, **_fake_motion()) as server:
        guesser = {"X-Forwarded-For": "203.0.113.9"}
        for _ in range(MAX_FAILURES):
            assert call(server, "GET", "/v1/avatars", bearer="wrong", headers=guesser)[0] == 401
        assert call(server, "GET", "/v1/avatars", bearer="wrong", headers=guesser)[0] == 429
        other = {"X-Forwarded-For": "203.0.113.10"}
        assert call(server, "GET", "/v1/avatars", bearer=token(server), headers=other)[0] == 200


def test_metrics_need_the_api_key_when_auth_is_on(
    secured: ServerThread, open_server: ServerThread
) -> None:
    assert call_raw(secured, "GET", "/metrics", b"", {}) == 401
    assert (
        call_raw(secured, "GET", "/metrics", b"", {"Authorization": f"Bearer {token(secured)}"})
        == 403
    )
    assert call_raw(secured, "GET", "/metrics", b"", {"Authorization": f"Bearer {API_KEY}"}) == 200
    assert call_raw(secured, "GET", "/healthz", b"", {}) == 200
    assert call_raw(open_server, "GET", "/metrics", b"", {}) == 200


def test_a_portrait_upload_that_is_no_image_is_refused_at_once(open_server: ServerThread) -> None:
    import io

    from PIL import Image

    srv = open_server
    status = raw_post(srv, "/v1/avatars?name=holiday", b"this is not an image", "image/png")
    assert status == 415
    tiny = io.BytesIO()
    Image.new("RGB", (20, 20)).save(tiny, format="PNG")
    assert raw_post(srv, "/v1/avatars?name=holiday", tiny.getvalue(), "image/png") == 422
    assert not srv.state.jobs, "no job was started for them"


def test_options_and_405_name_every_method_a_path_takes(open_server: ServerThread) -> None:
    import urllib.error
    import urllib.request

    def allow(method: str, path: str) -> tuple[int, str]:
        req = urllib.request.Request(open_server.url + path, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return int(resp.status), str(resp.headers.get("allow"))
        except urllib.error.HTTPError as exc:
            return int(exc.code), str(exc.headers.get("allow"))

    assert allow("OPTIONS", "/v1/sessions/x") == (204, "DELETE, GET, OPTIONS")
    assert allow("OPTIONS", "/v1/sessions") == (204, "GET, OPTIONS, POST")
    assert allow("PUT", "/v1/sessions/x") == (405, "DELETE, GET, OPTIONS")
    # a route that answers 405 itself keeps its own Allow (WHEP: no trickle ICE)
    assert allow("PATCH", "/v1/sessions/x/whep/r") == (405, "DELETE")
    assert allow("OPTIONS", "/v1/sessions/x/whep/r") == (204, "DELETE, OPTIONS")
    assert allow("OPTIONS", "/nowhere")[0] == 404
