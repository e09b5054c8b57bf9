"""The demo page in Debian chromium (Playwright): connecting, playing, the controls,
the phone layout, the fake microphone moving the mouth, reconnecting and portraits.

The chromium, fake-microphone and loopback set-up is in tests/browser_support.py; the
``mic_wav`` and ``browser`` fixtures are in tests/conftest.py.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.browser_support import (
    CONNECT_TIMEOUT_MS,
    MIN_FRAMES_IN_3S,
    NAV_TIMEOUT_MS,
    ConsoleLog,
    artifact,
    frames_decoded,
    motion_factories,
    server_settings,
    wait_state,
)
from tests.server_harness import SPEECH_WAV, TEST_SIZE, MouthMeter, ServerThread, rest_coefficients

pytestmark = pytest.mark.browser

PORTRAIT = Path(__file__).resolve().parent.parent / "models/assets/avatars/default/portrait.jpg"

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


@pytest.fixture(scope="module")
def srv(mic_wav: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """Open server (no API key), for the demo page; portraits enroll into a temp dir."""
    avatars = tmp_path_factory.mktemp("avatars")
    with ServerThread(server_settings(avatars_dir=avatars), **motion_factories()) as server:
        yield server


@pytest.fixture(scope="module")
def meter() -> MouthMeter:
    from headcast.models.render import create_renderer

    return MouthMeter(
        create_renderer(None, backend="warp", size=TEST_SIZE).render, rest_coefficients()
    )


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
    x0, y0 = crop[:2]
    openness = np.array([meter.measure(f, (x0, y0)) for f in frames])
    luma = frames.astype(np.float32).mean(axis=-1)
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


@pytest.mark.parametrize("screen", [360, 390])
def test_demo_page_fits_a_phone(browser: Any, srv: ServerThread, screen: int) -> None:
    """No sideways scrolling on a phone, before connecting and once live with stats."""
    page = browser.new_page(viewport={"width": screen, "height": 800}, device_scale_factor=2)
    log = ConsoleLog(page)
    page.goto(srv.url + "/", timeout=NAV_TIMEOUT_MS)
    page.wait_for_function(
        "document.querySelectorAll('#emotion option').length > 1", timeout=NAV_TIMEOUT_MS
    )
    width = page.evaluate("document.documentElement.scrollWidth")
    avatar_box = page.locator("#avatar").bounding_box()
    assert width <= screen, f"page is {width} px wide on a {screen} px screen"
    assert avatar_box is not None and avatar_box["width"] >= screen - 90
    page.click("#connect")
    page.wait_for_function(
        "document.getElementById('stats').textContent.includes('fps')", timeout=CONNECT_TIMEOUT_MS
    )
    page.screenshot(path=artifact(f"demo-phone-{screen}.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= screen, f"live page is {width} px wide on a {screen} px screen"
    page.click("#disconnect")
    assert not log.errors, log.errors
    # a link naming an avatar the server lacks says so, instead of showing another face
    page.goto(srv.url + "/?avatar=nosuch", timeout=NAV_TIMEOUT_MS)
    page.wait_for_function(
        "document.querySelectorAll('#avatar-select option').length > 0", timeout=NAV_TIMEOUT_MS
    )
    banner = page.locator("#error")
    assert banner.is_visible() and "no avatar named “nosuch”" in banner.inner_text()
    assert "default" in banner.inner_text()
    page.screenshot(path=artifact(f"demo-unknown-avatar-{screen}.png"))
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
    # The connection to the session drops (a server restart, a network cut): the event
    # socket closes without the server's word that the session was deleted, and the
    # page must notice and start over. (A session deleted through the API is final:
    # tests/test_browser_widget.py.)
    page.evaluate("document.querySelector('#avatar').connection.ws.close(4000, 'cut')")
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
    page.click("summary:has-text('use your own portrait')")  # where the file picker is
    page.set_input_files("#portrait", str(bad))
    page.wait_for_function("!document.getElementById('enroll-error').hidden", timeout=30_000)
    message = page.text_content("#enroll-error") or ""
    page.screenshot(path=artifact("demo-portrait-bad.png"))
    assert message.startswith("Portrait upload failed:") and len(message) > 30, message
    # said beside the file picker, not at the top of the page a screen away
    picker, said = (
        page.locator("#portrait").bounding_box(),
        page.locator("#enroll-error").bounding_box(),
    )
    assert picker and said and 0 < said["y"] - picker["y"] < 150, (picker, said)
    assert page.is_visible("#enroll-error") and page.is_hidden("#error")

    t0 = time.monotonic()
    page.set_input_files("#portrait", str(PORTRAIT))
    page.wait_for_function(
        "[...document.querySelectorAll('#avatar-select option')].some((o) => o.value === 'portrait')"
        " || !document.getElementById('enroll-error').hidden",
        timeout=90_000,
    )
    enroll_s = time.monotonic() - t0
    assert page.is_hidden("#enroll-error"), page.text_content("#enroll-error")
    name = page.evaluate("document.getElementById('avatar-select').value")
    # the name asked for (the file's), which `headcast render --avatar portrait` finds
    said = page.text_content("#enroll-message") or ""
    assert name == "portrait" and "enrolled" in said and "press Start to use it" in said, said
    page.click("#connect")
    assert wait_state(page, "#avatar", ("idle", "failed"), 60_000) == "idle", page.evaluate(
        "document.querySelector('#avatar').lastError"
    )
    page.wait_for_timeout(1500)
    page.screenshot(path=artifact("demo-portrait-enrolled.png"))
    print(f"portrait enrolled in {enroll_s:.1f} s and connected as {name!r}")
    assert frames_decoded(page, "#avatar") > 10
    # enrolled while live: the page says how to switch to it
    page.set_input_files("#portrait", str(PORTRAIT))
    page.wait_for_function(
        "/enrolled as/.test(document.getElementById('enroll-message').textContent)"
        " || !document.getElementById('enroll-error').hidden",
        timeout=90_000,
    )
    said = page.text_content("#enroll-message") or ""
    assert "was taken" in said and "press Stop, then Start, to use it" in said, said
    page.click("#disconnect")
    page.close()
