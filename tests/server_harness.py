"""Shared pieces of the server tests: a real uvicorn server on a thread, speech, measures."""

from __future__ import annotations

import asyncio
import io
import socket
import wave
from pathlib import Path
from typing import Any

import numpy as np

from headcast.client.local_server import LocalServer
from headcast.client.measure import MouthMeter, audio_timeline, av_lag_ms, envelope, mouth_series
from headcast.server.settings import ServerSettings

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


def wav_bytes(pcm: np.ndarray) -> bytes:
    """float32 16 kHz mono -> 16-bit WAV file bytes."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes((pcm * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def require_motion_model() -> None:
    """Skip (with the reason) when the shipped motion model is not in the checkout."""
    import pytest

    from headcast.models.motion.model import DEFAULT_MODEL

    if not DEFAULT_MODEL.exists():
        pytest.skip(f"shipped motion model {DEFAULT_MODEL} is not in this checkout")


def rest_coefficients(avatar: str | None = None) -> np.ndarray:
    """The built-in (or ``avatar``'s) face at ``neutral`` as a live session renders it:
    its portrait's smile relaxed."""
    from headcast.models.channels import CHANNEL_INDEX, zeros
    from headcast.server.live.pipeline_spec import portrait_smile

    rest = zeros()
    for name, value in (portrait_smile(avatar) or {}).items():
        rest[CHANNEL_INDEX[name]] = -min(float(value), 1.0)
    return rest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread(LocalServer):
    """``headcast serve`` in-process on its own thread and event loop, at test sizes."""

    def __init__(self, settings: ServerSettings | None = None, **factories: Any) -> None:
        base: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": free_port(),
            "default_size": TEST_SIZE,
            "allowed_sizes": (TEST_SIZE, 512),
            "avatars_dir": FIXTURES / "no-avatars",
            # the test's own clients (aiortc decoding, numpy) run in this process too
            "admit_by_server_process": False,
        }
        super().__init__(settings or ServerSettings(**base), factories)

    @property
    def state(self) -> Any:
        return self.app.state.headcast

    @property
    def server(self) -> Any:
        return self._server

    @property
    def thread(self) -> Any:
        """The thread whose event loop serves."""
        return self._thread

    def __enter__(self) -> ServerThread:  # type: ignore[override]
        self.start()
        # Renders that miss their send times on a loaded test machine are the machine's
        # (and the test's own clients'), not the sessions': admission does not refuse
        # new sessions for them here (tests/test_live_admission.py tests that refusal).
        sched = self.state.scheduler
        if sched is not None:
            sched.observe_renders = lambda frames, late: None
        return self


def run(coro: Any, timeout: float = 120.0) -> Any:
    """Run a test coroutine with a hard time limit."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


__all__ = [
    "MouthMeter",
    "ServerThread",
    "audio_timeline",
    "av_lag_ms",
    "envelope",
    "load_speech",
    "mouth_series",
    "require_motion_model",
    "run",
]
