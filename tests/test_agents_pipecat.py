"""``HeadcastVideoService`` in pipecat's own test pipeline, against a real ``headcast serve``.

Runs where pipecat is installed (``make test`` runs it in ``.agents-venv``, made from the
``pipecat`` extra only: the client's light install); the server is a separate process
started with the server's Python (``HEADCAST_SERVER_PYTHON``, default ``.venv``).
"""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pipecat", reason="pipecat-ai is not installed (the pipecat extra)")

from pipecat.frames.frames import (  # noqa: E402
    InterruptionFrame,
    OutputImageRawFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed  # noqa: E402
from pipecat.tests.utils import SleepFrame, run_test  # noqa: E402

from headcast.client.ice import restrict_host_addresses  # noqa: E402
from headcast.client.measure import av_lag_ms  # noqa: E402
from headcast.client.pipecat_service import HeadcastVideoService  # noqa: E402
from tests.agents_support import SIZE, headcast_server  # noqa: E402

restrict_host_addresses(["127.0.0.1"])  # this process's WebRTC peers: loopback only

SPEECH_WAV = Path(__file__).resolve().parent / "fixtures" / "speech.wav"
TTS_RATE = 24_000
FPS = 25


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with headcast_server() as url:
        yield url


def tts_frames(
    seconds: float, chunk_s: float = 0.1, rate: int = TTS_RATE
) -> list[TTSAudioRawFrame]:
    """The test sentence as a TTS would push it: int16 chunks at ``rate`` (24 kHz)."""
    with wave.open(str(SPEECH_WAV)) as w:
        pcm16k = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32)
    pcm16k = pcm16k[: int(seconds * 16_000)]
    t = np.arange(int(len(pcm16k) * rate / 16_000)) / rate
    pcm = np.interp(t, np.arange(len(pcm16k)) / 16_000, pcm16k).astype("<i2")
    step = int(chunk_s * rate)
    return [
        TTSAudioRawFrame(audio=pcm[i : i + step].tobytes(), sample_rate=rate, num_channels=1)
        for i in range(0, len(pcm), step)
    ]


class Recorder(BaseObserver):
    """When each frame left the service (monotonic s), and when interrupts went in."""

    def __init__(self, service: HeadcastVideoService) -> None:
        super().__init__()
        self.service = service
        self.out: list[tuple[float, Any]] = []
        self.interrupts: list[float] = []

    async def on_push_frame(self, data: FramePushed) -> None:
        now = time.monotonic()
        if data.source is self.service:
            self.out.append((now, data.frame))
        elif isinstance(data.frame, InterruptionFrame) and data.destination is self.service:
            self.interrupts.append(now)


def mouth_activity(images: list[tuple[float, OutputImageRawFrame]]) -> np.ndarray:
    """How far the mouth region of each frame is from the idle face's (the first
    frames', before any speech): mean absolute pixel difference, 0..255."""
    boxes = []
    for _, f in images:
        rgb = np.frombuffer(f.image, np.uint8).reshape(f.size[1], f.size[0], 3)
        h, w = rgb.shape[:2]  # the built-in avatar's mouth, in its full-portrait frame
        boxes.append(rgb[int(0.54 * h) : int(0.70 * h), int(0.40 * w) : int(0.60 * w)])
    stack = np.stack(boxes).astype(np.float32)
    idle = np.median(stack[:25], axis=0)
    return np.abs(stack - idle).mean(axis=(1, 2, 3))


def test_video_service_in_a_pipecat_pipeline(server_url: str) -> None:
    service = HeadcastVideoService(url=server_url, size=SIZE, fps=FPS)
    recorder = Recorder(service)
    first = tts_frames(3.0)
    second = tts_frames(3.0)
    frames = [
        SleepFrame(sleep=2.0),  # idle video, before any TTS audio
        TTSStartedFrame(),
        *first,
        TTSStoppedFrame(),
        SleepFrame(sleep=5.0),  # the whole utterance plays, then idles again
        TTSStartedFrame(),
        *second,
        TTSStoppedFrame(),
        SleepFrame(sleep=1.6),
        InterruptionFrame(),  # barge-in mid-utterance
        SleepFrame(sleep=1.5),
    ]
    down, _ = asyncio.run(
        run_test(service, frames_to_send=frames, observers=[recorder], start_timeout=60.0)
    )

    images = [(t, f) for t, f in recorder.out if isinstance(f, OutputImageRawFrame)]
    sound = [(t, f) for t, f in recorder.out if isinstance(f, TTSAudioRawFrame)]
    assert images and sound
    t0 = images[0][0]
    # idle video starts without TTS audio, RGB at the session size and frame rate
    assert all(f.format == "RGB" and f.size == (SIZE, SIZE) for _, f in images)
    assert len(images[0][1].image) == SIZE * SIZE * 3
    span = images[-1][0] - t0
    assert abs(len(images) / span - FPS) < 3, f"{len(images)} frames in {span:.1f} s"
    assert sum(1 for t, _ in images if t - t0 < 1.5) >= 25  # before the first TTS frame
    # the TTS audio is swallowed; what comes out is the session's, only while speaking
    assert not any(f.sample_rate == TTS_RATE for _, f in sound)
    assert not any(isinstance(f, TTSAudioRawFrame) and f.sample_rate == TTS_RATE for f in down)
    first_sound, interrupt = sound[0][0], recorder.interrupts[0]
    assert first_sound - t0 > 1.5  # nothing while idle at the start
    spoken = sum(f.num_frames / f.sample_rate for _, f in sound)
    assert 3.0 <= spoken < 3.0 + 1.6 + 1.0, spoken  # two utterances' sound, no idle stream
    gap = [t for t, _ in sound if first_sound + 4.0 < t < interrupt - 1.8]
    assert gap == [], "sound frames pushed while the avatar was idle"
    # audio and mouth in step (pixels against sound, as pushed)
    before = [(t, f) for t, f in images if t < interrupt]
    t_audio = np.concatenate(
        [t + np.arange(f.num_frames) / f.sample_rate for t, f in sound if t < interrupt]
    )
    pcm = np.concatenate(
        [np.frombuffer(f.audio, "<i2") / 32768.0 for t, f in sound if t < interrupt]
    )
    lag, r = av_lag_ms(np.array([t for t, _ in before]), mouth_activity(before), t_audio, pcm)
    assert r > 0.3 and abs(lag) <= 60, (lag, r)
    # the interrupt: no sound after it, the mouth closed within 100 ms (+ one frame)
    assert not [t for t, _ in sound if t > interrupt + 0.02]
    activity = mouth_activity(images)
    idle_level = np.percentile(activity[: len(activity) // 5], 95)
    after = [t for (t, _), a in zip(images, activity, strict=True) if t > interrupt]
    still_open = [
        t - interrupt
        for t, a in zip(after, activity[len(images) - len(after) :], strict=True)
        if a > idle_level + 0.5 * (activity.max() - idle_level)
    ]
    assert not still_open or max(still_open) <= 0.1 + 1.0 / FPS, still_open
    print(
        f"frames {len(images)} in {span:.1f} s, sound {spoken:.2f} s, A/V lag {lag:+.0f} ms "
        f"(r {r:.2f}), mouth open {max(still_open, default=0) * 1000:.0f} ms after interrupt"
    )


def test_without_a_url_and_no_server_installed_says_what_to_do() -> None:
    try:
        import headcast.server.app  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("the server is installed here: url=None would start it")
    service = HeadcastVideoService(url=None)
    with pytest.raises(RuntimeError, match="headcast\\[server\\]"):
        asyncio.run(service._open(24_000))


def test_a_lost_session_is_said_once_and_the_next_utterance_opens_a_new_one(
    server_url: str,
) -> None:
    """The session is deleted under a running pipeline: one ErrorFrame says so (not one
    per TTS chunk), every TTSStoppedFrame still goes downstream, and the next utterance
    speaks through a new session."""
    import threading
    import urllib.request

    from pipecat.frames.frames import ErrorFrame

    service = HeadcastVideoService(url=server_url, size=SIZE, fps=FPS)
    recorder = Recorder(service)
    lost: list[str] = []
    reopened: list[str | None] = []

    def delete_the_session() -> None:
        deadline = time.monotonic() + 60
        while service.session_id is None or service.frames_out < 10:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        sid = service.session_id
        lost.append(sid)
        req = urllib.request.Request(f"{server_url}/v1/sessions/{sid}", method="DELETE")
        urllib.request.urlopen(req, timeout=10).close()
        while service.session_id in (None, sid) and time.monotonic() < deadline:
            time.sleep(0.05)
        reopened.append(service.session_id)

    killer = threading.Thread(target=delete_the_session, daemon=True)
    killer.start()
    frames = [
        SleepFrame(sleep=3.0),  # the session is deleted meanwhile
        TTSStartedFrame(),
        *tts_frames(1.0),
        TTSStoppedFrame(),
        SleepFrame(sleep=2.5),
        TTSStartedFrame(),
        *tts_frames(1.0),
        TTSStoppedFrame(),
        SleepFrame(sleep=2.0),
    ]
    down, up = asyncio.run(
        run_test(service, frames_to_send=frames, observers=[recorder], start_timeout=60.0)
    )
    killer.join(timeout=5)
    assert lost, "the session was not deleted"
    assert reopened and reopened[0] not in (None, lost[0]), (lost, reopened)
    errors = [f for f in up if isinstance(f, ErrorFrame)]
    assert len(errors) == 1 and "session ended" in errors[0].error, errors
    assert sum(isinstance(f, TTSStoppedFrame) for f in down) == 2
    # the new session's avatar spoke: sound came out after the loss
    t_lost = next(t for t, f in recorder.out if isinstance(f, ErrorFrame))
    assert any(isinstance(f, TTSAudioRawFrame) for t, f in recorder.out if t > t_lost)
    assert sum(isinstance(f, OutputImageRawFrame) for t, f in recorder.out if t > t_lost) > 25


def test_tts_audio_at_a_rate_the_server_refuses_is_said_once_and_the_avatar_goes_on(
    server_url: str,
) -> None:
    from pipecat.frames.frames import ErrorFrame

    service = HeadcastVideoService(url=server_url, size=SIZE, fps=FPS)
    recorder = Recorder(service)
    frames = [
        SleepFrame(sleep=1.5),
        TTSStartedFrame(),
        *tts_frames(1.0, rate=96_000),  # above any rate the server takes
        TTSStoppedFrame(),
        SleepFrame(sleep=0.5),
        TTSStartedFrame(),
        *tts_frames(1.5),
        TTSStoppedFrame(),
        SleepFrame(sleep=2.5),
    ]
    down, up = asyncio.run(
        run_test(service, frames_to_send=frames, observers=[recorder], start_timeout=60.0)
    )
    errors = [f for f in up if isinstance(f, ErrorFrame)]
    assert len(errors) == 1 and "96000 Hz is dropped" in errors[0].error, errors
    assert sum(isinstance(f, TTSStoppedFrame) for f in down) == 2
    spoken = sum(
        f.num_frames / f.sample_rate for _, f in recorder.out if isinstance(f, TTSAudioRawFrame)
    )
    assert spoken >= 1.0, spoken  # the utterance at 24 kHz was heard
