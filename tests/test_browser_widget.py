"""The <headcast-avatar> widget embedded in a page of another origin, in Debian chromium
(Playwright): session tokens, speak/pushAudio/interrupt, and readable token errors.

The chromium, fake-microphone and loopback set-up is in tests/browser_support.py; the
``mic_wav`` and ``browser`` fixtures are in tests/conftest.py.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import (
    CONNECT_TIMEOUT_MS,
    MIN_FRAMES_IN_3S,
    NAV_TIMEOUT_MS,
    ConsoleLog,
    artifact,
    frames_decoded,
    motion_factories,
    second_origin,
    server_settings,
)
from tests.server_harness import SPEECH_WAV, ServerThread, free_port

pytestmark = pytest.mark.browser

API_KEY = "browser-test-key-0123456789"


@pytest.fixture(scope="module")
def site_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def secured(mic_wav: Path, site_port: int) -> Iterator[ServerThread]:
    """Server with an API key whose CORS allows the second origin only."""
    settings = server_settings(api_key=API_KEY, cors_origins=(f"http://127.0.0.1:{site_port}",))
    with ServerThread(settings, **motion_factories()) as server:
        yield server


def mint(server: ServerThread, **claims: Any) -> str:
    req = urllib.request.Request(
        server.url + "/v1/tokens",
        data=json.dumps(claims).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(json.loads(resp.read())["token"])


EMBED_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>a site embedding headcast</title>
<link rel="icon" href="data:,">
<script type="module" src="{server}/headcast.js"></script></head>
<body>
<h1>Shop assistant</h1>
<headcast-avatar id="a" server="{server}" token="" muted stats></headcast-avatar>
<script>
  window.seen = [];
  const a = document.getElementById('a');
  a.setAttribute('token', new URLSearchParams(location.search).get('token') || '');
  for (const t of ['connected', 'speechstart', 'speechend', 'interrupted', 'error'])
    a.addEventListener(t, (e) => window.seen.push({{ type: t, detail: e.detail }}));
</script>
</body></html>
"""


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, secured: ServerThread, site_port: int
) -> Iterator[str]:
    root = tmp_path_factory.mktemp("site")
    (root / "embed.html").write_text(EMBED_HTML.format(server=secured.url))
    shutil.copy(SPEECH_WAV, root / "speech.wav")
    with second_origin(root, site_port) as origin:
        yield origin


def seen(page: Any, kind: str) -> list[Any]:
    return list(page.evaluate(f"window.seen.filter((e) => e.type === '{kind}')"))


def wait_seen(page: Any, kind: str, timeout_ms: int) -> None:
    page.wait_for_function(f"window.seen.some((e) => e.type === '{kind}')", timeout=timeout_ms)


def test_widget_embedded_from_another_origin(
    browser: Any, secured: ServerThread, site: str
) -> None:
    token = mint(secured, origin=site, avatar="default", ttl_s=120)
    page = browser.new_page()
    log = ConsoleLog(page)
    page.goto(f"{site}/embed.html?token={token}", timeout=NAV_TIMEOUT_MS)
    page.wait_for_function("!!customElements.get('headcast-avatar')", timeout=NAV_TIMEOUT_MS)
    page.evaluate("document.getElementById('a').connect()")
    wait_seen(page, "connected", CONNECT_TIMEOUT_MS)
    page.wait_for_function("document.getElementById('a').video.readyState >= 2", timeout=10_000)
    before = frames_decoded(page, "#a")
    page.wait_for_timeout(3000)
    assert frames_decoded(page, "#a") - before >= MIN_FRAMES_IN_3S

    # speak(blob): an uploaded file starts speech; interrupt() stops it.
    page.evaluate(
        "fetch('speech.wav').then((r) => r.blob()).then((b) => document.getElementById('a').speak(b))"
    )
    wait_seen(page, "speechstart", 10_000)
    page.wait_for_timeout(1200)
    page.screenshot(path=artifact("embed-speaking.png"))
    assert page.evaluate("document.getElementById('a').state") == "speaking"
    page.evaluate("document.getElementById('a').interrupt()")
    wait_seen(page, "interrupted", 5000)
    assert page.evaluate("document.getElementById('a').state") == "idle"
    stats = page.evaluate("document.getElementById('a').stats()")

    # pushAudio(float32, rate): decoded in the page at 22.05 kHz, resampled by the widget.
    page.evaluate(
        """async () => {
      const bytes = await (await fetch('speech.wav')).arrayBuffer();
      const ctx = new OfflineAudioContext(1, 1, 22050);
      const audio = await ctx.decodeAudioData(bytes);
      const pcm = audio.getChannelData(0).slice(0, audio.sampleRate * 2);
      document.getElementById('a').setEmotion('happy');
      document.getElementById('a').pushAudio(pcm, audio.sampleRate);
    }"""
    )
    page.wait_for_function(
        "window.seen.filter((e) => e.type === 'speechstart').length >= 2", timeout=10_000
    )
    page.wait_for_function(
        "window.seen.filter((e) => e.type === 'speechend').length >= 2", timeout=10_000
    )
    page.evaluate("document.getElementById('a').close()")
    assert page.evaluate("document.getElementById('a').state") == "disconnected"
    print(f"embedded widget stats after speaking: {stats}")
    assert stats["pushToMouthMs"] is not None and 0 < stats["pushToMouthMs"] < 2000
    assert not seen(page, "error"), seen(page, "error")
    assert not log.errors, log.errors
    page.close()


def failed_connect(page: Any, url: str) -> str:
    """Open the embed page at ``url``, connect, wait for the error; the text it shows."""
    page.goto(url, timeout=NAV_TIMEOUT_MS)
    page.wait_for_function("!!customElements.get('headcast-avatar')", timeout=NAV_TIMEOUT_MS)
    page.evaluate("document.getElementById('a').connect().catch(() => {})")
    wait_seen(page, "error", 10_000)
    return str(
        page.evaluate("document.getElementById('a').shadowRoot.querySelector('.error').textContent")
    )


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("garbage", "neither the server's API key nor a session token"),
        ("foreign", "issued for"),
        ("missing", "needs a session token"),
    ],
)
def test_invalid_token_shows_a_readable_error(
    browser: Any, secured: ServerThread, site: str, case: str, expect: str
) -> None:
    token = {
        "garbage": "not-a-token",
        "foreign": mint(secured, origin="http://127.0.0.1:1", ttl_s=60),
        "missing": "",
    }[case]
    page = browser.new_page()
    shown = failed_connect(page, f"{site}/embed.html?token={token}")
    visible = page.evaluate(
        "getComputedStyle(document.getElementById('a').shadowRoot.querySelector('.error')).display"
    )
    page.screenshot(path=artifact(f"embed-token-{case}.png"))
    assert page.evaluate("document.getElementById('a').state") == "failed"
    assert shown.startswith("Not authorised:") and expect in shown, shown
    assert visible != "none"
    assert seen(page, "error")[0]["detail"]["message"] == shown
    page.close()


def test_a_site_the_server_does_not_allow_gets_the_widget_and_its_reason(
    browser: Any, secured: ServerThread, tmp_path: Path
) -> None:
    """The widget's code loads on any site (a module script needs CORS); on a site not
    in cors_origins it then says why it cannot connect, instead of a blank page."""
    (tmp_path / "embed.html").write_text(EMBED_HTML.format(server=secured.url))
    with second_origin(tmp_path) as origin:
        page = browser.new_page()
        shown = failed_connect(page, f"{origin}/embed.html?token=x")
        page.screenshot(path=artifact("embed-origin-not-allowed.png"))
        assert f"{origin} is not in the server's cors_origins" in shown, shown
        page.close()


def server_sessions(server: ServerThread) -> list[Any]:
    req = urllib.request.Request(
        server.url + "/v1/sessions", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return list(json.loads(resp.read()))


def test_widget_cancelled_connects_and_api_misuse(
    browser: Any, secured: ServerThread, site: str
) -> None:
    """close() or a second connect() while connecting leaves nothing open and no false
    failure; pushAudio in small chunks loses no samples; bad arguments are readable."""
    import time

    token = mint(secured, origin=site, avatar="default", ttl_s=120)
    page = browser.new_page()
    log = ConsoleLog(page)
    page.goto(f"{site}/embed.html?token={token}", timeout=NAV_TIMEOUT_MS)
    page.wait_for_function("!!customElements.get('headcast-avatar')", timeout=NAV_TIMEOUT_MS)

    # 128-sample chunks (a Web Audio block) resample exactly as the whole array does
    chunked = page.evaluate(
        f"""async () => {{
      const {{ Resampler }} = await import('{secured.url}/headcast.js');
      const out = {{}};
      for (const rate of [48000, 44100, 22050, 8000]) {{
        const x = Float32Array.from({{ length: rate }}, (_, i) => Math.sin(i * 0.013));
        const whole = new Resampler(rate, 16000).push(x);
        const r = new Resampler(rate, 16000);
        const parts = [];
        for (let i = 0; i < x.length; i += 128) parts.push(...r.push(x.subarray(i, i + 128)));
        let diff = 0;
        for (let i = 0; i < whole.length; i++) diff = Math.max(diff, Math.abs(whole[i] - parts[i]));
        out[rate] = [whole.length, parts.length, diff];
      }}
      return out;
    }}"""
    )
    for rate, (whole, parts, diff) in chunked.items():
        assert whole == parts and abs(whole - 16000) <= 2 and diff == 0, (rate, whole, parts)

    # close() straight after connect(): no session stays open, no failure is shown
    page.evaluate(
        "() => { const a = document.getElementById('a'); a.connect().catch(() => {}); a.close(); }"
    )
    page.wait_for_timeout(2500)
    assert page.evaluate("document.getElementById('a').state") == "disconnected"
    assert not seen(page, "connected") and not seen(page, "error")
    deadline = time.monotonic() + 5
    while server_sessions(secured) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server_sessions(secured) == []

    # connect() twice in a row: the second one is live, the first one quietly gave way
    page.evaluate(
        """() => { const a = document.getElementById('a'); a.setAttribute('fps', '30');
                   a.connect().catch(() => {}); setTimeout(() => a.connect(), 150); }"""
    )
    wait_seen(page, "connected", CONNECT_TIMEOUT_MS)
    page.wait_for_timeout(1500)
    assert page.evaluate("document.getElementById('a').state") == "idle"
    assert not seen(page, "error"), seen(page, "error")
    live = server_sessions(secured)
    assert len(live) == 1 and live[0]["fps"] == 30, live

    # close() while the connection waits for ICE (after the answer): ends at once
    page.evaluate("document.getElementById('a').close()")
    cancelled = page.evaluate(
        f"""async () => {{
      const {{ HeadcastConnection }} = await import('{secured.url}/headcast.js');
      const a = document.getElementById('a');
      const conn = new HeadcastConnection({{ server: a.getAttribute('server'),
        token: a.getAttribute('token'), video: document.createElement('video'),
        target: new EventTarget() }});
      const original = RTCPeerConnection.prototype.setRemoteDescription;
      RTCPeerConnection.prototype.setRemoteDescription = async function (d) {{
        await original.call(this, d);
        conn.close();  // the connect is now waiting for 'connected'
      }};
      const t0 = performance.now();
      try {{ await conn.open(); return ['opened', 0]; }}
      catch (e) {{ return [e.message, performance.now() - t0]; }}
      finally {{ RTCPeerConnection.prototype.setRemoteDescription = original; }}
    }}"""
    )
    assert cancelled[0].startswith("Connection cancelled") and cancelled[1] < 5000, cancelled
    page.evaluate("document.getElementById('a').connect()")
    wait_seen(page, "connected", CONNECT_TIMEOUT_MS)

    errors = page.evaluate(
        """() => { const a = document.getElementById('a'); const got = [];
      for (const f of [() => a.setEmotion('nope'), () => a.pushAudio(new Float32Array(160), NaN),
                       () => a.pushAudio(new Float32Array(160), 0), () => a.pushAudio(null, 16000)]) {
        try { f(); got.push('no error'); } catch (e) { got.push(`${e.name}: ${e.message}`); }
      }
      a.pushAudio(Float32Array.from([NaN, Infinity, 0.1]), 16000); // cleaned, not an error
      return [got, a.getAttribute('emotion')]; }"""
    )
    got, emotion = errors
    assert all(e.startswith("HeadcastError: ") for e in got), got
    assert "Unknown emotion 'nope'" in got[0] and "sampleRate" in got[1]
    assert emotion != "nope"

    # the site's back end deletes the session: the widget stops, saying so, and does not
    # open another session behind the back end's back
    (sid,) = [x["id"] for x in server_sessions(secured)]
    req = urllib.request.Request(
        f"{secured.url}/v1/sessions/{sid}", method="DELETE",
        headers={"Authorization": f"Bearer {API_KEY}"},
    )  # fmt: skip
    urllib.request.urlopen(req, timeout=10).close()
    page.wait_for_function("document.getElementById('a').state === 'disconnected'", timeout=10_000)
    page.wait_for_timeout(3000)  # longer than the first reconnect would wait
    assert page.evaluate("document.getElementById('a').state") == "disconnected"
    assert server_sessions(secured) == []
    shown = page.evaluate(
        "document.getElementById('a').shadowRoot.querySelector('.error').textContent"
    )
    assert "closed the session" in shown, shown
    page.evaluate("document.getElementById('a').close()")
    assert not log.errors, log.errors
    page.close()


def test_demo_page_with_a_token_loads_its_menus(browser: Any, secured: ServerThread) -> None:
    """The demo page as `headcast serve --demo-token` links it on a keyed server: the
    avatars, emotions and voices all load with the token (the voices were refused)."""
    token = mint(secured, origin=secured.url, ttl_s=120)
    page = browser.new_page()
    log = ConsoleLog(page)
    page.goto(f"{secured.url}/?token={token}", timeout=NAV_TIMEOUT_MS)
    page.wait_for_function(
        "document.querySelectorAll('#emotion option').length > 1 && "
        "document.querySelectorAll('#voice option').length > 0",
        timeout=NAV_TIMEOUT_MS,
    )
    assert page.evaluate("document.getElementById('error').hidden"), page.evaluate(
        "document.getElementById('error').textContent"
    )
    assert not log.errors, log.errors
    page.close()
