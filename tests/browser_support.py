"""Shared pieces of the browser tests: Chromium through Playwright, a second origin,
the fake microphone's speech, server settings, page helpers, and a stand-in motion model
when the shipped one is absent.

Chromium's fake microphone says an espeak-ng sentence (looping). Every wait is bounded;
screenshots go to artifacts/browser/. The server gathers ICE on 127.0.0.1 only and
chromium is allowed loopback candidates, so WebRTC stays on this host.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from headcast.models.channels import MOUTH_CHANNELS
from headcast.server.settings import ServerSettings
from tests.server_harness import FIXTURES, TEST_SIZE, free_port

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "browser"
SPEECH_TEXT = (
    "Peter picked a peck of pickled peppers. Hello there, how are you today? "
    "A big black bug bit a big black bear."
)
SPF = 640  # samples per frame at 16 kHz and 25 fps
NAV_TIMEOUT_MS = 15_000
CONNECT_TIMEOUT_MS = 25_000  # first connect includes the server's first session build
MIN_FRAMES_IN_3S = 50

# Chromium in a container: no sandbox, no GPU, no network chatter, QUIC off. The
# server's ICE candidates are 127.0.0.1; chromium offers loopback candidates only with
# --allow-loopback-in-peer-connection (without it the pair still formed here over the
# eth0 address, but that needs another interface up).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
)


def require_browser() -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (scripts/apt-deps.sh test)")
    pytest.importorskip("playwright.sync_api")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (scripts/apt-deps.sh test)")


def make_speech_wav(path: Path) -> Path:
    """The fake microphone's input: espeak-ng speech, 22.05 kHz mono WAV."""
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), SPEECH_TEXT], check=True, timeout=30)
    return path


@contextmanager
def chromium(mic_wav: Path, autoplay: str = "no-user-gesture-required") -> Iterator[Any]:
    """A headless Debian chromium whose microphone says ``mic_wav`` (looping).
    ``autoplay``: Chromium's autoplay policy; ``document-user-activation-required`` is
    what a visitor's browser applies to a page they have not clicked."""
    from playwright.sync_api import sync_playwright

    flags = [f for f in CHROMIUM_FLAGS if not f.startswith("--autoplay-policy=")]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                *flags,
                f"--autoplay-policy={autoplay}",
                f"--use-file-for-fake-audio-capture={mic_wav}",
            ],
            timeout=30_000,
        )
        try:
            yield browser
        finally:
            browser.close()


def artifact(name: str) -> str:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return str(ARTIFACTS / name)


def server_settings(**extra: Any) -> ServerSettings:
    """Test-size server on a free loopback port, ICE on 127.0.0.1 only."""
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": free_port(),
        "default_size": TEST_SIZE,
        "allowed_sizes": (TEST_SIZE,),
        "avatars_dir": FIXTURES / "no-avatars",
        "ice_host_addresses": ("127.0.0.1",),
    }
    return ServerSettings(**{**base, **extra})


def frames_decoded(page: Any, selector: str) -> int:
    stats = page.evaluate(f"document.querySelector('{selector}').stats()")
    return int(stats["framesDecoded"]) if stats else 0


def wait_state(page: Any, selector: str, states: tuple[str, ...], timeout_ms: int) -> str:
    """The first of `states` the element is seen in (read in the same check that matched it:
    a short state such as one sentence's "speaking" may be gone by the next read)."""
    check = (
        f"(() => {{ const s = document.querySelector('{selector}').state;"
        f" return {json.dumps(list(states))}.includes(s) ? s : false; }})()"
    )
    handle = page.wait_for_function(check, timeout=timeout_ms)
    return str(handle.json_value())


class ConsoleLog:
    """Console messages and page errors of one page."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        self.all: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def _console(self, msg: Any) -> None:
        self.all.append(f"{msg.type}: {msg.text}")
        if msg.type == "error":
            self.errors.append(msg.text)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def second_origin(root: Path, port: int | None = None) -> Iterator[str]:
    """Serve ``root`` over HTTP on another loopback port: a page of another site."""
    port = port or free_port()
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# ---- a stand-in for the shipped motion model ------------------------------------------


@dataclass(frozen=True)
class _Frames:
    index: np.ndarray  # int64 (N,)
    coeffs: np.ndarray  # float32 (N, 16) MOUTH_CHANNELS order: only jawOpen moves
    speech: np.ndarray  # float32 (N,) 0..1


class LoudnessMotion:
    """jawOpen from each frame's loudness: enough to see speech reach the mouth.

    The browser tests check the client's path (microphone -> WebRTC -> server -> video),
    not lip-sync quality, so when the trained model is not in the checkout they run on
    this. Same interface as the model/streamer pair the server loads.
    """

    names = MOUTH_CHANNELS  # a motion model emits every mouth channel, in this order
    lookahead_s = 0.0
    GAIN = 8.0  # rms 0.1 -> jawOpen 0.8
    SPEECH_RMS = 0.01

    def __init__(self, fps: int = 25) -> None:
        self.fps = fps


class LoudnessStreamer:
    def __init__(self, model: LoudnessMotion) -> None:
        self.spf = 16_000 // model.fps
        self.reset()

    def reset(self) -> None:
        self._pending = np.zeros(0, np.float32)
        self._next = 0

    def push(self, pcm: np.ndarray) -> _Frames:
        self._pending = np.concatenate([self._pending, np.asarray(pcm, np.float32)])
        n = len(self._pending) // self.spf
        frames = self._pending[: n * self.spf].reshape(n, self.spf)
        self._pending = self._pending[n * self.spf :]
        rms = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)) if n else np.zeros(0)
        index = np.arange(self._next, self._next + n, dtype=np.int64)
        self._next += n
        mouth = np.zeros((n, len(MOUTH_CHANNELS)), np.float32)
        mouth[:, MOUTH_CHANNELS.index("jawOpen")] = np.clip(rms * LoudnessMotion.GAIN, 0.0, 1.0)
        return _Frames(index, mouth, (rms > LoudnessMotion.SPEECH_RMS).astype(np.float32))

    def flush(self) -> _Frames:
        out = self.push(np.zeros(-len(self._pending) % self.spf, np.float32))
        self.reset()
        return out


def motion_factories() -> dict[str, Any]:
    """create_app factories: the stand-in when the shipped motion model is absent."""
    from headcast.models.motion.model import DEFAULT_MODEL

    if DEFAULT_MODEL.exists():
        return {}
    return {"motion_loader": LoudnessMotion, "streamer_factory": LoudnessStreamer}
