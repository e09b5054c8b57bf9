"""Shared pieces of the server tests: a real uvicorn server on a thread, speech, measures."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn

from models.channels import CHANNEL_INDEX, zeros
from server.app import create_app
from server.settings import ServerSettings

FIXTURES = Path(__file__).parent / "fixtures"
SPEECH_WAV = FIXTURES / "speech.wav"  # espeak-ng, 16 kHz mono, 10.9 s
TEST_SIZE = 256
FPS = 25


def load_speech(seconds: float | None = None) -> np.ndarray:
    """float32 (N,) 16 kHz mono -1..1 of the test sentence."""
    with wave.open(str(SPEECH_WAV)) as w:
        assert w.getframerate() == 16_000 and w.getnchannels() == 1
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0
    return pcm if seconds is None else pcm[: int(seconds * 16_000)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """``headcast serve`` in-process on its own thread and event loop."""

    def __init__(self, settings: ServerSettings | None = None, **factories: Any) -> None:
        port = free_port()
        base: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": port,
            "default_size": TEST_SIZE,
            "allowed_sizes": (TEST_SIZE, 512),
            "avatars_dir": FIXTURES / "no-avatars",
        }
        self.settings = settings or ServerSettings(**base)
        self.app = create_app(self.settings, **factories)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.settings.port,
            log_level="warning",
            ws="websockets-sansio",
            ws_max_size=self.settings.max_message_bytes,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.settings.port}"

    @property
    def state(self) -> Any:
        return self.app.state.headcast

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


def run(coro: Any, timeout: float = 120.0) -> Any:
    """Run a test coroutine with a hard time limit."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


class MouthMeter:
    """How open the avatar's mouth is in a frame, from pixels alone.

    The cavity is where a jawOpen=1 render is dark and the neutral render is not;
    openness is the fraction of that region that is dark in the frame, scaled so that
    jawOpen=1 reads 1. Lips, teeth and the dark clothing below the chin are never in
    the region, so the idle head drift does not read as an open mouth.
    """

    DARK = 70.0  # luma below which a pixel counts as mouth cavity
    GAIN = 40.0  # luma drop from the neutral render that marks the cavity

    def __init__(self, render: Callable[[np.ndarray], np.ndarray]) -> None:
        closed = render(zeros()).astype(np.float32).mean(axis=-1)
        c = zeros()
        c[CHANNEL_INDEX["jawOpen"]] = 1.0
        opened = render(c).astype(np.float32).mean(axis=-1)
        self.mask = ((closed - opened) > self.GAIN) & (opened < self.DARK)
        assert self.mask.sum() > 50, "jawOpen=1 shows no mouth cavity"

    def measure(self, frame: np.ndarray) -> float:
        """0 (closed) .. 1 (as open as jawOpen=1)."""
        luma = frame.astype(np.float32).mean(axis=-1)
        return float(((luma < self.DARK) & self.mask).sum() / self.mask.sum())


def mouth_series(video: list[tuple[float, np.ndarray]], meter: MouthMeter) -> tuple[Any, Any]:
    """(arrival times float64 (N,), mouth openness float32 (N,)) of received frames."""
    t = np.array([ts for ts, _ in video], np.float64)
    m = np.array([meter.measure(f) for _, f in video], np.float32)
    return t, m


def audio_timeline(audio: list[tuple[float, np.ndarray, int]]) -> tuple[Any, Any]:
    """Received audio as (sample times float64 (M,), samples float32 (M,))."""
    if not audio:
        return np.zeros(0), np.zeros(0, np.float32)
    times = [t + np.arange(len(pcm)) / rate for t, pcm, rate in audio]
    return np.concatenate(times), np.concatenate([pcm for _, pcm, _ in audio])


def envelope(at: np.ndarray, times: np.ndarray, pcm: np.ndarray, window_s: float) -> Any:
    """RMS of the audio within ``window_s`` centred on each time in ``at``."""
    lo = np.searchsorted(times, at - window_s / 2)
    hi = np.searchsorted(times, at + window_s / 2)
    sq = np.concatenate([[0.0], np.cumsum(pcm.astype(np.float64) ** 2)])
    n = np.maximum(hi - lo, 1)
    return np.sqrt((sq[hi] - sq[lo]) / n)


def av_lag_ms(
    t_video: np.ndarray, mouth: np.ndarray, t_audio: np.ndarray, pcm: np.ndarray
) -> tuple[float, float]:
    """Lag (ms, positive = video late) maximising the correlation of mouth openness with the
    audio loudness, searched over ±200 ms in 5 ms steps; and that correlation."""
    best = (0.0, -1.0)
    for d_ms in range(-200, 201, 5):
        env = envelope(t_video - d_ms / 1000.0, t_audio, pcm, 0.04)
        if env.std() == 0 or mouth.std() == 0:
            continue
        r = float(np.corrcoef(mouth, env)[0, 1])
        if r > best[1]:
            best = (float(d_ms), r)
    return best
