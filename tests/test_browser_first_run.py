"""The widget as a visitor meets it: a browser that refuses sound before a click, tabs
closed and reloaded, a full server. Debian chromium driven by Playwright."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import (
    CONNECT_TIMEOUT_MS,
    NAV_TIMEOUT_MS,
    ConsoleLog,
    artifact,
    chromium,
    motion_factories,
    second_origin,
    server_settings,
    wait_state,
)
from tests.server_harness import ServerThread, free_port

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parents[1] / "docs" / "client.md"
# Listeners a test reads, added by a classic script after the docs' snippet: it runs while
# the page is parsed, before any module script (the widget and the snippet's own).
WATCH = """<script>
  window.seen = [];
  for (const t of ['connected', 'autoplayblocked', 'error', 'speechstart'])
    document.getElementById('guide').addEventListener(t, (e) => {
      window.seen.push({ type: t, detail: e.detail });
      console.log(`headcast:${t}`);
    });
</script>"""


def docs_embed(server: str, avatar: str = "default") -> str:
    """The docs' embedding example exactly as written (docs/client.md), pointed at
    ``server``; no api_key on the test server, so its placeholder token is not checked."""
    found = re.search(r"## Embedding an avatar\n\n```html\n(.*?)```", DOCS.read_text(), re.S)
    assert found, "docs/client.md lost its embedding example"
    snippet = found.group(1).replace("https://avatar.example.com", server)
    snippet = snippet.replace('avatar="default"', f'avatar="{avatar}"')
    head = '<!doctype html>\n<html><head><meta charset="utf-8"><link rel="icon" href="data:,">'
    return f"{head}</head>\n<body>\n{snippet}{WATCH}\n</body></html>\n"


def write_mp3(wav: Path, out: Path) -> None:
    """``wav`` re-encoded as an MP3 (the docs' ``/hello.mp3``)."""
    import av

    with av.open(str(wav)) as src, av.open(str(out), "w", format="mp3") as dst:
        stream = dst.add_stream("libmp3lame", rate=22050, layout="mono")
        for frame in src.decode(audio=0):
            frame.pts = None
            for packet in stream.encode(frame):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)


AUTOCONNECT = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script type="module" src="{server}/headcast.js"></script></head>
<body><headcast-avatar id="a" server="{server}" muted autoconnect></headcast-avatar></body></html>
"""


@pytest.fixture(scope="module")
def site_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def srv(mic_wav: Path, site_port: int) -> Iterator[ServerThread]:
    settings = server_settings(cors_origins=(f"http://127.0.0.1:{site_port}",), max_sessions=2)
    with ServerThread(settings, **motion_factories()) as server:
        yield server


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, mic_wav: Path, srv: ServerThread, site_port: int
) -> Iterator[str]:
    root = tmp_path_factory.mktemp("site")
    (root / "embed.html").write_text(docs_embed(srv.url))
    (root / "nobody.html").write_text(docs_embed(srv.url, avatar="nobody"))
    write_mp3(mic_wav, root / "hello.mp3")
    (root / "auto.html").write_text(AUTOCONNECT.format(server=srv.url))
    with second_origin(root, site_port) as origin:
        yield origin


def wait_sessions(srv: ServerThread, count: int, within_s: float) -> int:
    deadline = time.monotonic() + within_s
    while len(srv.state.sessions) != count and time.monotonic() < deadline:
        time.sleep(0.2)
    return len(srv.state.sessions)


def test_sound_refused_before_a_click_plays_muted_with_a_tap_to_unmute(
    mic_wav: Path, srv: ServerThread, site: str
) -> None:
    with chromium(mic_wav, autoplay="document-user-activation-required") as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        log = ConsoleLog(page)
        # Nothing is evaluated in the page until it has spoken: Playwright's evaluate
        # counts as a user gesture, which would let the sound play. Console lines are read.
        with page.expect_console_message(
            lambda m: m.text == "headcast:connected", timeout=CONNECT_TIMEOUT_MS
        ):
            page.goto(f"{site}/embed.html", timeout=NAV_TIMEOUT_MS)
        deadline = time.monotonic() + 20.0  # the docs' speak(hello.mp3) after connect()
        while "log: headcast:speechstart" not in log.all and time.monotonic() < deadline:
            page.wait_for_timeout(100)  # lets Playwright deliver console events; no evaluate
        assert "log: headcast:speechstart" in log.all, log.all
        seen = page.evaluate("window.seen.map((e) => e.type)")
        assert seen[:2] == ["autoplayblocked", "connected"] and "error" not in seen
        video = "document.getElementById('guide').video"
        page.wait_for_function(f"!{video}.paused && {video}.readyState >= 2", timeout=10_000)
        assert page.evaluate(f"{video}.muted") is True
        button = page.locator("#guide").locator(".unmute")
        assert button.is_visible() and "unmute" in (button.text_content() or "")
        page.screenshot(path=artifact("embed-autoplay-blocked.png"))
        page.set_viewport_size({"width": 360, "height": 740})  # a phone: the control still fits
        box = button.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360
        page.screenshot(path=artifact("embed-autoplay-blocked-360x740.png"))
        button.click()  # the visitor's tap: sound on
        page.wait_for_function(f"!{video}.muted && !{video}.paused", timeout=5000)
        assert not button.is_visible()
        page.evaluate("document.getElementById('guide').close()")
        page.close()
    assert wait_sessions(srv, 0, 10.0) == 0


def test_the_docs_example_fails_to_connect_without_an_uncaught_error(
    browser: Any, srv: ServerThread, site: str
) -> None:
    """The same snippet with an avatar the server does not have: connect() rejects, the
    widget says why and fires ``error``, and the page has no uncaught error."""
    page = browser.new_page()
    log = ConsoleLog(page)
    page.goto(f"{site}/nobody.html", timeout=NAV_TIMEOUT_MS)
    assert wait_state(page, "#guide", ("failed", "idle"), CONNECT_TIMEOUT_MS) == "failed"
    seen = page.evaluate("window.seen.map((e) => e.type)")
    assert "error" in seen and "connected" not in seen
    assert "nobody" in page.evaluate("document.getElementById('guide').lastError")
    page.wait_for_timeout(500)
    assert [e for e in log.errors if e.startswith("page error")] == []
    page.close()
    assert wait_sessions(srv, 0, 10.0) == 0


def test_reloaded_tabs_leave_no_session_behind(browser: Any, srv: ServerThread, site: str) -> None:
    """The server takes two sessions; a reloaded tab's old session ends at once (a
    beacon on pagehide), so the eleventh visit still connects."""
    page = browser.new_page()
    for visit in range(11):
        if visit == 0:
            page.goto(f"{site}/auto.html", timeout=NAV_TIMEOUT_MS)
        else:
            page.reload(timeout=NAV_TIMEOUT_MS)
        state = wait_state(page, "#a", ("idle", "failed"), CONNECT_TIMEOUT_MS)
        assert state == "idle", (visit, page.evaluate("document.getElementById('a').lastError"))
    assert wait_sessions(srv, 1, 10.0) == 1
    page.close()  # the last tab closed too: nothing left
    assert wait_sessions(srv, 0, 10.0) == 0


def test_a_full_server_is_waited_for_not_failed(browser: Any, srv: ServerThread, site: str) -> None:
    first, second = browser.new_page(), browser.new_page()
    third = browser.new_page()
    for page in (first, second):
        page.goto(f"{site}/auto.html", timeout=NAV_TIMEOUT_MS)
        assert wait_state(page, "#a", ("idle", "failed"), CONNECT_TIMEOUT_MS) == "idle"
    third.goto(f"{site}/auto.html", timeout=NAV_TIMEOUT_MS)
    assert wait_state(third, "#a", ("waiting", "idle", "failed"), CONNECT_TIMEOUT_MS) == "waiting"
    label = third.locator("#a").locator(".state").text_content() or ""
    assert "waiting for a free slot" in label
    first.close()  # a slot frees: the waiting page gets it within the server's hint
    assert wait_sessions(srv, 1, 10.0) == 1
    # its retries wait for the server's Retry-After (5 s), more than once if admission
    # still finds the machine too busy
    state = wait_state(third, "#a", ("idle", "failed"), 2 * CONNECT_TIMEOUT_MS)
    assert state == "idle", third.evaluate("document.getElementById('a').lastError")
    for page in (second, third):
        page.close()
    assert wait_sessions(srv, 0, 10.0) == 0


JOIN = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script type="module" src="{server}/headcast.js"></script></head>
<body><headcast-avatar id="a" server="{server}" muted></headcast-avatar>
<script type="module">
  window.seen = [];
  const a = document.getElementById('a');
  const q = new URLSearchParams(location.search);
  a.setAttribute('token', q.get('token'));
  for (const t of ['connected', 'speechstart'])
    a.addEventListener(t, (e) => window.seen.push({{ type: t, detail: e.detail }}));
  await a.connect({{ session: q.get('session') }});
</script></body></html>
"""
JOIN_KEY = "join-test-key-0123456789"


def test_a_page_joins_the_session_its_back_end_opened(
    browser: Any, mic_wav: Path, tmp_path: Path
) -> None:
    """The back end opens a session and mints a token bound to it; the page watches that
    session, the agent's speech (pushed with the API key) moves its mouth, and a reload
    re-attaches to the same session."""
    from tests.server_harness import wav_bytes
    from tests.test_api_auth import call

    site_port = free_port()
    settings = server_settings(api_key=JOIN_KEY, cors_origins=(f"http://127.0.0.1:{site_port}",))
    with ServerThread(settings, **motion_factories()) as server:
        (tmp_path / "join.html").write_text(JOIN.format(server=server.url))
        with second_origin(tmp_path, site_port) as origin:
            status, session, _ = call(server, "POST", "/v1/sessions", {}, bearer=JOIN_KEY)
            assert status == 201
            sid = session["id"]
            status, minted, _ = call(
                server, "POST", "/v1/tokens", {"session": sid, "origin": origin}, bearer=JOIN_KEY
            )
            assert status == 201 and minted["session"] == sid
            token = minted["token"]
            # the token watches that session and opens no other
            assert call(server, "POST", "/v1/sessions", {}, bearer=token)[0] == 403
            assert call(server, "GET", f"/v1/sessions/{sid}", bearer=token)[0] == 200

            page = browser.new_page()
            page.goto(f"{origin}/join.html?token={token}&session={sid}", timeout=NAV_TIMEOUT_MS)
            page.wait_for_function(
                "window.seen.some((e) => e.type === 'connected')", timeout=CONNECT_TIMEOUT_MS
            )
            assert page.evaluate("window.seen[0].detail.session") == sid
            req_status = _upload(server, sid, wav_bytes(_speech()))
            assert req_status == 202
            page.wait_for_function(
                "window.seen.some((e) => e.type === 'speechstart')", timeout=10_000
            )
            page.reload(timeout=NAV_TIMEOUT_MS)
            page.wait_for_function(
                "window.seen.some((e) => e.type === 'connected')", timeout=CONNECT_TIMEOUT_MS
            )
            assert page.evaluate("window.seen[0].detail.session") == sid
            assert list(server.state.sessions) == [sid], "re-attached, nothing new opened"
            page.close()
            call(server, "DELETE", f"/v1/sessions/{sid}", bearer=JOIN_KEY)


def _speech() -> Any:
    from tests.server_harness import load_speech

    return load_speech(2.0)


def _upload(server: ServerThread, sid: str, body: bytes) -> int:
    import urllib.request

    req = urllib.request.Request(
        f"{server.url}/v1/sessions/{sid}/audio",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {JOIN_KEY}", "Content-Type": "audio/wav"},
    )
    with urllib.request.urlopen(req, timeout=20) as resp:
        return int(resp.status)
