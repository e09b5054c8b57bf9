"""The demo page and the <headcast-avatar> widget in Debian chromium (Playwright).

Chromium's fake microphone says an espeak-ng sentence (looping). Every wait is bounded;
screenshots go to artifacts/browser/. The server gathers ICE on 127.0.0.1 only and
chromium is allowed loopback candidates, so WebRTC stays on this host.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from server.settings import ServerSettings
from tests.browser_support import (
    ARTIFACTS,
    CONNECT_TIMEOUT_MS,
    NAV_TIMEOUT_MS,
    ConsoleLog,
    chromium,
    make_speech_wav,
    motion_factories,
    require_browser,
    second_origin,
)
from tests.server_harness import (
    FIXTURES,
    SPEECH_WAV,
    TEST_SIZE,
    MouthMeter,
    ServerThread,
    free_port,
)

pytestmark = pytest.mark.browser

PORTRAIT = Path(__file__).resolve().parent.parent / "models/assets/avatars/default/portrait.jpg"

API_KEY = "browser-test-key"
MIN_FRAMES_IN_3S = 50
CAPTURE_S = 3.0
CAPTURE_EVERY_MS = 40
OPEN = 0.2  # MouthMeter openness that counts as an open mouth (jawOpen ~0.4)

# In the page: grab the <video> of a <headcast-avatar> into a canvas every `every` ms
# for `seconds`, returning the crop [x0, y0, w, h] of each frame as base64 RGBA.
CAPTURE_JS = """
async ([selector, crop, seconds, every]) => {
  const video = document.querySelector(selector).video;
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const frames = [];
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    ctx.drawImage(video, 0, 0);
    const data = ctx.getImageData(crop[0], crop[1], crop[2], crop[3]).data;
    let s = '';
    for (let i = 0; i < data.length; i += 8192) s += String.fromCharCode(...data.subarray(i, i + 8192));
    frames.push(btoa(s));
    await new Promise((r) => setTimeout(r, every));
  }
  return frames;
}
"""


def artifact(name: str) -> str:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return str(ARTIFACTS / name)


@pytest.fixture(scope="module")
def mic_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_browser()
    return make_speech_wav(tmp_path_factory.mktemp("mic") / "speech.wav")


@pytest.fixture(scope="module")
def browser(mic_wav: Path) -> Iterator[Any]:
    with chromium(mic_wav) as b:
        yield b


@pytest.fixture(scope="module")
def site_port() -> int:
    return free_port()


def _settings(**extra: Any) -> ServerSettings:
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": free_port(),
        "default_size": TEST_SIZE,
        "allowed_sizes": (TEST_SIZE,),
        "avatars_dir": FIXTURES / "no-avatars",
        "ice_host_addresses": ("127.0.0.1",),
    }
    return ServerSettings(**{**base, **extra})


@pytest.fixture(scope="module")
def srv(mic_wav: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """Open server (no API key), for the demo page; portraits enroll into a temp dir."""
    avatars = tmp_path_factory.mktemp("avatars")
    with ServerThread(_settings(avatars_dir=avatars), **motion_factories()) as server:
        yield server


@pytest.fixture(scope="module")
def secured(mic_wav: Path, site_port: int) -> Iterator[ServerThread]:
    """Server with an API key whose CORS allows the second origin only."""
    settings = _settings(api_key=API_KEY, cors_origins=(f"http://127.0.0.1:{site_port}",))
    with ServerThread(settings, **motion_factories()) as server:
        yield server


@pytest.fixture(scope="module")
def meter() -> MouthMeter:
    from models.render import create_renderer

    return MouthMeter(create_renderer(None, backend="warp", size=TEST_SIZE).render)


def mint(server: ServerThread, **claims: Any) -> str:
    req = urllib.request.Request(
        server.url + "/v1/tokens",
        data=json.dumps(claims).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(json.loads(resp.read())["token"])


def frames_decoded(page: Any, selector: str) -> int:
    stats = page.evaluate(f"document.querySelector('{selector}').stats()")
    return int(stats["framesDecoded"]) if stats else 0


def wait_state(page: Any, selector: str, states: tuple[str, ...], timeout_ms: int) -> str:
    page.wait_for_function(
        f"{json.dumps(list(states))}.includes(document.querySelector('{selector}').state)",
        timeout=timeout_ms,
    )
    return str(page.evaluate(f"document.querySelector('{selector}').state"))


def capture(page: Any, selector: str, crop: tuple[int, int, int, int]) -> np.ndarray:
    """uint8 (N, h, w, 3) RGB crops of the video, every ~40 ms for CAPTURE_S."""
    shots = page.evaluate(CAPTURE_JS, [selector, list(crop), CAPTURE_S, CAPTURE_EVERY_MS])
    _, _, w, h = crop
    return np.stack(
        [np.frombuffer(base64.b64decode(s), np.uint8).reshape(h, w, 4)[..., :3] for s in shots]
    )


def mouth_crop(meter: MouthMeter, margin: int = 6) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(meter.mask)
    x0, y0 = max(0, xs.min() - margin), max(0, ys.min() - margin)
    x1, y1 = min(TEST_SIZE, xs.max() + margin + 1), min(TEST_SIZE, ys.max() + margin + 1)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def mouth_activity(
    frames: np.ndarray, meter: MouthMeter, crop: tuple[int, ...]
) -> dict[str, float]:
    """Openness (MouthMeter on the crop) and mean frame-to-frame change in the mouth region."""
    x0, y0, w, h = crop
    mask = meter.mask[y0 : y0 + h, x0 : x0 + w]
    luma = frames.astype(np.float32).mean(axis=-1)
    openness = ((luma < MouthMeter.DARK) & mask).sum(axis=(1, 2)) / mask.sum()
    change = np.abs(np.diff(luma, axis=0)).mean(axis=(1, 2))
    return {
        "frames": float(len(frames)),
        "open_max": float(openness.max()),
        "open_frac": float((openness > OPEN).mean()),
        "change": float(change.mean()),
    }


# ---- the demo page ----------------------------------------------------------------------


def test_demo_page_connects_and_plays(browser: Any, srv: ServerThread) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    log = ConsoleLog(page)
    page.goto(srv.url + "/", timeout=NAV_TIMEOUT_MS)
    page.wait_for_function(
        "document.querySelectorAll('#emotion option').length > 1", timeout=NAV_TIMEOUT_MS
    )
    assert page.evaluate("customElements.get('headcast-avatar') !== undefined")
    t0 = time.monotonic()
    page.click("#connect")
    assert (
        wait_state(page, "#avatar", ("idle", "failed"), CONNECT_TIMEOUT_MS) == "idle"
    ), page.evaluate("document.querySelector('#avatar').lastError")
    connect_s = time.monotonic() - t0
    page.wait_for_function(
        "document.querySelector('#avatar').video.readyState >= 2", timeout=NAV_TIMEOUT_MS
    )
    before = frames_decoded(page, "#avatar")
    page.wait_for_timeout(3000)
    after = frames_decoded(page, "#avatar")
    stats = page.evaluate("document.querySelector('#avatar').stats()")
    page.wait_for_timeout(1100)  # one stats tick paints the overlay
    page.screenshot(path=artifact("demo-live.png"))
    print(f"connect {connect_s:.2f} s, frames decoded in 3 s: {after - before}, stats {stats}")
    assert after - before >= MIN_FRAMES_IN_3S
    assert stats["width"] == TEST_SIZE and stats["rttMs"] is not None
    assert page.text_content("#status") == "live · idle"
    assert "fps" in page.text_content("#stats")

    # The controls: an emotion, an uploaded file to say, and the interrupt button.
    page.select_option("#emotion", "happy")
    page.set_input_files("#audio-file", str(SPEECH_WAV))
    assert wait_state(page, "#avatar", ("speaking",), 10_000) == "speaking"
    page.wait_for_timeout(1500)
    page.screenshot(path=artifact("demo-speaking.png"))
    page.click("#interrupt")
    assert wait_state(page, "#avatar", ("idle",), 5000) == "idle"
    push_to_mouth = page.evaluate("document.querySelector('#avatar').stats()")["pushToMouthMs"]
    print(f"demo page push-to-mouth {push_to_mouth:.0f} ms")
    assert 0 < push_to_mouth < 2000
    assert page.is_hidden("#error"), page.text_content("#error")
    page.click("#disconnect")
    assert wait_state(page, "#avatar", ("disconnected",), 5000) == "disconnected"
    assert not log.errors, log.errors
    page.close()


def test_demo_page_fits_a_phone(browser: Any, srv: ServerThread) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    log = ConsoleLog(page)
    page.goto(srv.url + "/", timeout=NAV_TIMEOUT_MS)
    page.wait_for_function(
        "document.querySelectorAll('#emotion option').length > 1", timeout=NAV_TIMEOUT_MS
    )
    width = page.evaluate("document.documentElement.scrollWidth")
    avatar_box = page.locator("#avatar").bounding_box()
    page.screenshot(path=artifact("demo-phone.png"), full_page=True)
    assert width <= 390, f"page is {width} px wide on a 390 px screen"
    assert avatar_box is not None and avatar_box["width"] >= 300
    assert not log.errors, log.errors
    page.close()


def test_fake_microphone_moves_the_mouth(
    browser: Any, srv: ServerThread, meter: MouthMeter
) -> None:
    page = browser.new_page()
    log = ConsoleLog(page)
    page.goto(srv.url + "/", timeout=NAV_TIMEOUT_MS)
    page.wait_for_function(
        "document.querySelectorAll('#emotion option').length > 1", timeout=NAV_TIMEOUT_MS
    )
    crop = mouth_crop(meter)
    page.click("#connect")  # websocket input, nothing pushed: silence
    assert wait_state(page, "#avatar", ("idle", "failed"), CONNECT_TIMEOUT_MS) == "idle"
    page.wait_for_timeout(500)
    silent = mouth_activity(capture(page, "#avatar", crop), meter, crop)
    page.check("#mirror")  # reconnects with the microphone sent to the server
    page.wait_for_function(
        "document.querySelector('#avatar').connection?.input === 'mirror'"
        " && ['idle', 'speaking'].includes(document.querySelector('#avatar').state)",
        timeout=CONNECT_TIMEOUT_MS,
    )
    page.wait_for_timeout(500)
    speaking = mouth_activity(capture(page, "#avatar", crop), meter, crop)
    page.screenshot(path=artifact("demo-mirror.png"))
    print(f"mouth region, silence {silent}, microphone speech {speaking}")
    assert silent["frames"] >= 30 and speaking["frames"] >= 30
    assert silent["open_max"] < OPEN, "the mouth opened in silence"
    assert speaking["open_max"] > OPEN and speaking["open_frac"] > 0.1
    assert speaking["change"] > 2.0 * silent["change"] + 0.5
    page.click("#disconnect")
    assert not log.errors, log.errors
    page.close()


def test_demo_page_reconnects_after_losing_its_session(browser: Any, srv: ServerThread) -> None:
    page = browser.new_page()
    page.goto(srv.url + "/", timeout=NAV_TIMEOUT_MS)
    page.click("#connect")
    assert wait_state(page, "#avatar", ("idle", "failed"), CONNECT_TIMEOUT_MS) == "idle"
    first = page.evaluate("document.querySelector('#avatar').sessionId")
    page.evaluate(
        "window.states = []; document.querySelector('#avatar').addEventListener("
        "'statechange', (e) => window.states.push(e.detail.state))"
    )
    t0 = time.monotonic()
    # The server drops the session (as after a restart or a network cut long enough
    # for it to give up): video stops, and the page must notice and start over.
    req = urllib.request.Request(f"{srv.url}/v1/sessions/{first}", method="DELETE")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 204
    page.wait_for_function(
        f"document.querySelector('#avatar').sessionId && "
        f"document.querySelector('#avatar').sessionId !== {json.dumps(first)} && "
        "document.querySelector('#avatar').state === 'idle'",
        timeout=20_000,
    )
    recovered_s = time.monotonic() - t0
    states = page.evaluate("window.states")
    before = frames_decoded(page, "#avatar")
    page.wait_for_timeout(2000)
    after = frames_decoded(page, "#avatar")
    print(f"reconnected in {recovered_s:.1f} s via {states}, then {after - before} frames in 2 s")
    assert "reconnecting" in states and states[-1] == "idle"
    assert after - before >= MIN_FRAMES_IN_3S * 2 // 3
    page.click("#disconnect")
    page.close()


def test_demo_page_enrolls_a_portrait_and_explains_a_bad_one(
    browser: Any, srv: ServerThread, tmp_path: Path
) -> None:
    page = browser.new_page()
    page.goto(srv.url + "/", timeout=NAV_TIMEOUT_MS)
    page.wait_for_function(
        "document.querySelectorAll('#emotion option').length > 1", timeout=NAV_TIMEOUT_MS
    )
    bad = tmp_path / "holiday.png"
    bad.write_bytes(b"this is not an image")
    page.set_input_files("#portrait", str(bad))
    page.wait_for_function("!document.getElementById('error').hidden", timeout=30_000)
    message = page.text_content("#error") or ""
    page.screenshot(path=artifact("demo-portrait-bad.png"))
    assert message.startswith("Portrait upload failed:") and len(message) > 30, message

    t0 = time.monotonic()
    page.set_input_files("#portrait", str(PORTRAIT))
    page.wait_for_function(
        "[...document.querySelectorAll('#avatar-select option')].some((o) => o.value.startsWith('portrait-'))"
        " || !document.getElementById('error').hidden",
        timeout=90_000,
    )
    enroll_s = time.monotonic() - t0
    assert page.is_hidden("#error"), page.text_content("#error")
    name = page.evaluate("document.getElementById('avatar-select').value")
    assert name.startswith("portrait-") and "enrolled" in (
        page.text_content("#enroll-message") or ""
    )
    page.click("#connect")
    assert wait_state(page, "#avatar", ("idle", "failed"), 60_000) == "idle", page.evaluate(
        "document.querySelector('#avatar').lastError"
    )
    page.wait_for_timeout(1500)
    page.screenshot(path=artifact("demo-portrait-enrolled.png"))
    print(f"portrait enrolled in {enroll_s:.1f} s and connected as {name!r}")
    assert frames_decoded(page, "#avatar") > 10
    page.click("#disconnect")
    page.close()


# ---- the widget on another origin ------------------------------------------------------

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


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("garbage", "malformed token"),
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
    page.goto(f"{site}/embed.html?token={token}", timeout=NAV_TIMEOUT_MS)
    page.wait_for_function("!!customElements.get('headcast-avatar')", timeout=NAV_TIMEOUT_MS)
    page.evaluate("document.getElementById('a').connect().catch(() => {})")
    wait_seen(page, "error", 10_000)
    shown = page.evaluate(
        "document.getElementById('a').shadowRoot.querySelector('.error').textContent"
    )
    visible = page.evaluate(
        "getComputedStyle(document.getElementById('a').shadowRoot.querySelector('.error')).display"
    )
    page.screenshot(path=artifact(f"embed-token-{case}.png"))
    assert page.evaluate("document.getElementById('a').state") == "failed"
    assert shown.startswith("Not authorised:") and expect in shown, shown
    assert visible != "none"
    assert seen(page, "error")[0]["detail"]["message"] == shown
    page.close()
