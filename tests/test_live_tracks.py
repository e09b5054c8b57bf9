"""The avatar's audio on its way out: slot timing through Opus, RTP audio levels."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

from headcast.server.live.clock import AUDIO_CHUNK, MediaClock


def test_the_opus_packet_sent_in_an_audio_slot_carries_that_slots_audio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """libopus adds look-ahead (and an encoder may hold a frame back): the track
    compensates, so the packet sent in slot k decodes to session samples from k * 320,
    as the media clock schedules (and as video frames are sent). It never reads past
    what ``first_unread_sample`` promises is still unread (early onsets rely on it)."""
    import asyncio

    from aiortc.codecs.opus import OpusDecoder
    from aiortc.jitterbuffer import JitterFrame

    from headcast.server.live.encoders import SpeechOpusEncoder
    from headcast.server.live.tracks import AvatarAudioTrack, audio_read_ahead

    burst_at = 10 * AUDIO_CHUNK  # session sample where a loud tone starts
    t = np.arange(16_000) / 16_000
    speech = np.where(np.arange(16_000) >= burst_at, 0.5 * np.sin(2 * np.pi * 440 * t), 0.0)
    # A clock that moves only when the track sleeps: every slot is sent on time however
    # slowly the machine runs (a loaded one made the track skip slots it was late for,
    # which is its policy, not what is tested here).
    now = [time.monotonic()]

    async def sleep(seconds: float) -> None:
        now[0] += max(seconds, 0.0)

    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    monkeypatch.setattr(asyncio, "sleep", sleep)
    clock = MediaClock(25, delay_frames=2, start=now[0] - 0.08)
    overreads = []

    def read_audio(s: int, n: int) -> np.ndarray:
        unread = clock.first_unread_sample(now[0], audio_read_ahead())
        if s + n > unread:
            overreads.append((s + n, unread))
        return speech[s : s + n].astype(np.float32)

    session = SimpleNamespace(
        closed=False,
        clock=clock,
        pipeline=SimpleNamespace(read_audio=read_audio),
        on_audio_sent=lambda s, at: None,
    )
    track = AvatarAudioTrack(session)  # type: ignore[arg-type]
    encoder, decoder = SpeechOpusEncoder(), OpusDecoder()

    async def slots() -> dict[int, float]:
        loudness = {}
        for _ in range(16):
            frame = await track.recv()
            slot = frame.pts // (frame.sample_rate // 50)  # 20 ms slots
            for payload in encoder.encode(frame)[0]:
                out = decoder.decode(JitterFrame(data=payload, timestamp=0))[0]
                pcm = out.to_ndarray().astype(np.float32) / 32768.0
                loudness[slot] = float(np.sqrt(np.mean(pcm**2)))
        return loudness

    loudness = asyncio.run(slots())
    loud = [k for k, v in sorted(loudness.items()) if v > 0.1]
    assert loud and loud[0] == burst_at // AUDIO_CHUNK, loudness
    assert not overreads


def test_audio_level_matches_aiortcs_own_computation() -> None:
    """The vectorised RFC 6465 level the server installs equals aiortc's per-sample one."""
    import av

    from headcast.server.live.tracks import AIORTC_AUDIO_LEVEL, audio_level_dbov

    assert AIORTC_AUDIO_LEVEL is not audio_level_dbov

    rng = np.random.default_rng(5)
    for scale in (0.0, 1e-6, 1e-3, 0.05, 0.5, 1.0):
        for layout, channels in (("mono", 1), ("stereo", 2)):
            pcm = np.clip(rng.standard_normal(960 * channels) * scale, -1, 1)
            s16 = np.rint(pcm * 32767).astype(np.int16).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(s16, format="s16", layout=layout)
            frame.sample_rate = 48_000
            assert audio_level_dbov(frame) == AIORTC_AUDIO_LEVEL(frame), (scale, layout)
