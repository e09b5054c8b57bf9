"""server/live/pipeline.py: one session's compute, frames aligned with audio, interrupts, early onsets."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import numpy as np

from headcast.models.channels import CHANNEL_INDEX, MOUTH_CHANNELS
from headcast.models.mixer import MotionMixer
from headcast.server.live.clock import (
    MediaClock,
)
from headcast.server.live.pipeline import SessionPipeline

JAW = CHANNEL_INDEX["jawOpen"]


class LoudnessStreamer:
    """Motion stand-in for pipeline bookkeeping: jawOpen = frame RMS, 1-frame look-ahead."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.pcm = np.zeros(0, np.float32)
        self.next = 0

    def push(self, pcm: np.ndarray) -> Any:
        self.pcm = np.r_[self.pcm, pcm]
        idx, rows = [], []
        while (self.next + 2) * 640 <= len(self.pcm):
            seg = self.pcm[self.next * 640 : (self.next + 1) * 640]
            row = np.zeros(len(MOUTH_CHANNELS), np.float32)
            row[0] = min(1.0, float(np.sqrt(np.mean(seg**2))) * 5)
            idx.append(self.next)
            rows.append(row)
            self.next += 1
        return SimpleNamespace(
            index=np.array(idx, np.int64),
            coeffs=np.array(rows, np.float32).reshape(-1, len(MOUTH_CHANNELS)),
            speech=np.ones(len(idx), np.float32),
        )

    def flush(self) -> Any:
        return self.push(np.zeros(0, np.float32))


def make_pipeline(start: float) -> SessionPipeline:
    clock = MediaClock(25, delay_frames=2, start=start)
    return SessionPipeline(
        clock=clock,
        streamer=LoudnessStreamer(),
        mixer=MotionMixer(25, seed=0, idle=False),
        render=lambda c: np.full((8, 8, 3), int(c[JAW] * 255), np.uint8),
        max_buffered_s=5.0,
    )


def test_pipeline_aligns_frames_with_audio_and_closes_the_mouth_in_silence() -> None:
    p = make_pipeline(start=time.monotonic() + 100.0)  # far future: nothing is "late"
    tone = 0.5 * np.sin(np.arange(16_000) * 2 * np.pi * 220 / 16_000).astype(np.float32)
    p.tick_until(4)  # 5 frames of silence first
    p.push(tone[:3200])  # 200 ms of sound, starting at tick 5
    made = p.tick_until(20)
    assert p.motion_late == 0, "the delay must cover the motion look-ahead"
    frames = {f.index: f for f in made}
    speech = [j for j, f in frames.items() if f.speech]
    assert speech == list(range(5, 10)), "frame j carries samples [640 j, 640 (j + 1))"
    assert all(frames[j].coeffs[JAW] > 0.5 for j in speech)
    assert all(frames[j].coeffs[JAW] < 0.05 for j in range(14, 19)), "silence closes the mouth"
    # the delayed audio holds exactly the pushed samples at their session position
    np.testing.assert_allclose(p.read_audio(5 * 640, 3200), tone[:3200])
    assert np.all(p.read_audio(4 * 640, 640) == 0.0)


def test_pipeline_interrupt_flushes_and_eases_to_closed() -> None:
    start = time.monotonic()
    p = make_pipeline(start=start)
    tone = 0.5 * np.sin(np.arange(32_000) * 2 * np.pi * 220 / 16_000).astype(np.float32)
    p.push(tone)
    p.tick_until(30)
    now = p.clock.video_time(25) + 0.001  # frame 25 is on screen
    cut = p.interrupt(now)
    # dropped: the speech not yet taken (after tick 30) and the taken speech not yet played
    assert cut["frame"] == 26 and abs(cut["sample"] - (25 * 640 + 16)) <= 1
    assert cut["dropped_samples"] == len(tone) - cut["sample"]
    jaws = [p.frame(j).coeffs[JAW] for j in range(26, p.next_frame)]  # type: ignore[union-attr]
    assert jaws[0] < 0.5 * p.frame(25).coeffs[JAW]  # type: ignore[union-attr]
    assert jaws[2:] == [0.0] * (len(jaws) - 2), "closed by the third frame"
    assert len(p.input) == 0
    assert np.all(p.read_audio(cut["sample"], 640) == 0.0), "unplayed speech is silenced"
    assert p.motion_late == 0, "frames eased to idle by design are not late"
    p.tick_until(40)
    assert all(p.frame(j).coeffs[JAW] == 0.0 for j in range(34, 39))  # type: ignore[union-attr]
    assert p.motion_late == 0


def _speech_pipeline(start: float, read_ahead: int) -> SessionPipeline:
    from headcast.models.motion import MotionStreamer, load_motion_model

    model = load_motion_model()
    return SessionPipeline(
        clock=MediaClock(25, delay_frames=2, start=start, output_delay=0.08),
        streamer=MotionStreamer(model),
        mixer=MotionMixer(25, seed=0, idle=False),
        render=lambda c: np.full((8, 8, 3), int(c[JAW] * 255), np.uint8),
        max_buffered_s=5.0,
        early_onsets=True,
        read_ahead=read_ahead,
    )


def test_early_onset_starts_buffered_speech_on_unsent_silence(monkeypatch: Any) -> None:
    """Speech pushed after silence with more already buffered starts at the first unread
    sample, not a whole output delay later, and its motion is exactly what it would have
    been had it arrived then; speech trickling in in real time keeps the delay."""
    from headcast.models.motion import infer, load_motion_model
    from headcast.server.bench.live import DEFAULT_SPEECH
    from headcast.server.bench.loopback import load_speech as _load_speech

    recorded = _load_speech(DEFAULT_SPEECH)
    onset = int(np.argmax(np.abs(recorded) > 0.02))
    speech = recorded[onset : onset + 16_000]
    n = 12
    # A frozen clock: the schedule is exact however slowly the ticks below run.
    frozen = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: frozen)
    p = _speech_pipeline(0.0, read_ahead=120)
    p.clock.start = frozen - (n + 0.5) / 25  # now is mid-tick n
    p.tick_until(n)  # silence up to input tick n; output plays ~frame 10.5
    before = time.monotonic()
    p.push(speech)
    made = {f.index: f for f in p.tick_until(n)}  # woken by the push: no new tick is due
    after = time.monotonic()
    assert p.early_onsets_taken == 1
    heard = p.read_audio(0, 40 * 640)
    s0 = int(np.argmax(heard != 0.0))
    clock = p.clock
    assert clock.first_unread_sample(before, 120) <= s0
    assert s0 <= clock.first_unread_sample(after + 0.02, 120)
    assert s0 < (n + 1) * 640, "earlier than the next tick would have taken it"
    consumed = p.next_tick * 640 - s0
    assert consumed > 0
    np.testing.assert_array_equal(heard[s0 : s0 + consumed], speech[:consumed])
    # the first changed frame is already made, and every frame matches the offline motion
    j1 = -(-s0 // 640)
    assert j1 in made and made[j1].speech
    made.update({f.index: f for f in p.tick_until(n + 20)})
    model = load_motion_model()
    ref = infer(model, np.r_[np.zeros(s0, np.float32), speech])
    ref_jaw = ref.coeffs[:, list(model.names).index("jawOpen")]
    jaws = [made[j].coeffs[JAW] for j in range(j1, n + 18)]
    np.testing.assert_allclose(jaws, ref_jaw[j1 : n + 18], atol=1e-5)
    assert max(jaws) > 0.2, "the speech opens the mouth"

    # real time: 20 ms pushes after silence leave no cushion, so nothing moves
    q = _speech_pipeline(0.0, read_ahead=120)
    q.clock.start = frozen - (n + 0.5) / 25
    q.tick_until(n)
    q.push(speech[:320])
    q.tick_until(n)
    assert q.early_onsets_taken == 0 and len(q.input) == 320


def test_a_live_session_relaxes_the_portraits_own_smile() -> None:
    """The built-in portrait smiles; at ``neutral`` the pipeline ``build_pipeline`` makes
    for a session renders a negative smile (the renderer's relax flow), as offline
    rendering does."""
    from headcast.server.live.pipeline_spec import PipelineSpec, build_pipeline, portrait_smile

    smile = portrait_smile(None)
    assert smile is not None and smile["mouthSmileLeft"] > 0.2
    assert portrait_smile("/nonexistent/pack") is None
    seen: list[np.ndarray] = []

    def render(c: np.ndarray) -> np.ndarray:
        seen.append(c.copy())
        return np.zeros((8, 8, 3), np.uint8)

    def build(lips: Any) -> SessionPipeline:
        spec = PipelineSpec(
            avatar=None, size=256, fps=25, seed=0, emotion="neutral",
            clock=MediaClock(25, delay_frames=2, start=time.monotonic()),
            max_buffered_s=5.0, echo_audio=True, early_onsets=False, read_ahead=0,
        )  # fmt: skip
        return build_pipeline(
            spec, streamer=LoudnessStreamer(), render=render,
            lips=lips,
        )  # fmt: skip

    smile_left = CHANNEL_INDEX["mouthSmileLeft"]
    build(None).tick_until(3)
    assert seen and max(c[smile_left] for c in seen) < -0.2
