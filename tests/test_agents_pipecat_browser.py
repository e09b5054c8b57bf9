"""pipecat's SmallWebRTC transport shows the headcast avatar in Chromium: the example bot
(examples/pipecat_avatar.py, run as a user would) with a real ``headcast serve``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pipecat", reason="pipecat-ai is not installed (the pipecat extra)")
pytest.importorskip("aiohttp", reason="aiohttp is not installed")
sync_api = pytest.importorskip("playwright.sync_api")

from tests.agents_support import ROOT, free_port, headcast_server, running  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]
# In the page: the <video>'s current frame, 64x64, as mean RGB plus its spread.
GRAB = """() => {
  const v = document.getElementById('v');
  const c = document.createElement('canvas'); c.width = 64; c.height = 64;
  const g = c.getContext('2d'); g.drawImage(v, 0, 0, 64, 64);
  const d = g.getImageData(0, 0, 64, 64).data; const px = [];
  for (let i = 0; i < d.length; i += 4) px.push(d[i], d[i + 1], d[i + 2]);
  return px;
}"""


@pytest.fixture(scope="module")
def bot_url() -> Iterator[str]:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed")
    with headcast_server() as headcast:
        port = free_port()
        cmd = [sys.executable, str(ROOT / "examples" / "pipecat_avatar.py")]
        cmd += ["--headcast", headcast, "--port", str(port), "--ice-host", "127.0.0.1"]
        with running(cmd, port, "the example bot", "/") as url:
            yield url


def test_the_pipecat_bot_shows_the_avatar_in_chromium(bot_url: str) -> None:
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, timeout=30_000)
        try:
            page = browser.new_page()
            page.goto(bot_url, timeout=30_000)
            page.click("#start")
            page.wait_for_function(
                "document.getElementById('v').videoWidth > 0"
                " && document.getElementById('v').getVideoPlaybackQuality().totalVideoFrames > 25",
                timeout=60_000,
            )
            size = page.evaluate(
                "[document.getElementById('v').videoWidth, document.getElementById('v').videoHeight]"
            )
            assert size == [384, 384]
            frame = np.array(page.evaluate(GRAB), np.float32).reshape(64, 64, 3)
            # the astronaut: a light background, skin and a dark suit, not a black box
            assert frame.mean() > 60 and frame.std() > 30, (frame.mean(), frame.std())
            page.screenshot(path=str(ROOT / "artifacts" / "pipecat-avatar.png"))
            quality = "document.getElementById('v').getVideoPlaybackQuality().totalVideoFrames"
            before = page.evaluate(quality)
            page.wait_for_timeout(2000)
            assert page.evaluate(quality) - before > 30  # still live, about 25 fps
        finally:
            browser.close()
