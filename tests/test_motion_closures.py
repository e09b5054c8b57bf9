"""The closure pass for files: a phone recogniser's /p b m/ close the mouth where the
network dips (models/motion/closures.py)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from headcast.models.audio.features import to_mono_16k
from headcast.models.channels import MOUTH_CHANNELS
from headcast.models.motion import (
    ClosurePass,
    MotionFrames,
    MotionModel,
    MotionStreamer,
    closures,
    infer,
    infer_file,
    load_motion_model,
)
from headcast.models.training.synth import available_engines, synth_flite
from headcast.models.training.visemes import BILABIAL

pytest.importorskip(
    "pocketsphinx", reason="pocketsphinx is not installed (requirements/phones.txt)"
)

JAW = MOUTH_CHANNELS.index("jawOpen")
PRESS = [MOUTH_CHANNELS.index("mouthPressLeft"), MOUTH_CHANNELS.index("mouthPressRight")]
SR = 16_000
TEXTS = (
    "Bob put the map by the pump.",
    "My mom bought a big blue umbrella.",
    "Please pass the paper, Pam.",
)


@pytest.fixture(scope="module")
def files_model() -> MotionModel:
    model = load_motion_model(offline=True, provider="cpu")
    if model.causal:
        pytest.skip("no model for files shipped")
    return model


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, list[tuple[float, float]]]:
    """24 s of flite speech with pauses (three recogniser blocks) and its /p b m/ spans."""
    if not available_engines().get("flite"):
        pytest.skip("flite is not installed")
    parts, spans, t = [], [], 0.0
    pause = np.zeros(int(0.5 * SR), np.float32)
    while t < 24.0:
        for text in TEXTS:
            utt = synth_flite(text, "slt", 1.0)
            audio = to_mono_16k(utt.audio, utt.rate)
            spans += [(t + s, t + e) for v, s, e in utt.visemes if v == BILABIAL]
            parts += [audio, pause]
            t += (len(audio) + len(pause)) / SR
    return np.concatenate(parts).astype(np.float32), spans


def test_recogniser_hears_the_bilabials(speech: tuple[np.ndarray, list]) -> None:
    """Most recognised /p b m/ overlap a synthesised one, and most of those are found."""
    pcm, truth = speech
    rec = closures._recogniser()
    assert rec is not None
    found = rec.bilabials(pcm[: 10 * SR])
    truth = [(s, e) for s, e in truth if e <= 10.0]

    def hits(a: list, b: list) -> int:
        return sum(any(s < e2 + 0.02 and s2 < e + 0.02 for s2, e2 in b) for s, e in a)

    assert len(found) >= 5
    assert hits(found, truth) >= 0.7 * len(found), (found, truth)
    assert hits(truth, found) >= 0.6 * len(truth), (found, truth)


def test_files_close_more_bilabials_than_the_network(
    files_model: MotionModel, speech: tuple[np.ndarray, list]
) -> None:
    pcm, truth = speech
    plain = infer(files_model, pcm)
    closed = infer_file(files_model, pcm)
    fps = files_model.fps

    def shut(frames: MotionFrames) -> int:
        jaw = frames.coeffs[:, JAW]
        limit = 0.15 * max(float(np.percentile(jaw, 90)), 0.05)
        return sum(
            float(jaw[int(s * fps) : int(np.ceil(e * fps)) + 1].min()) <= limit for s, e in truth
        )

    assert shut(closed) > shut(plain)
    changed = np.flatnonzero(np.any(closed.coeffs != plain.coeffs, axis=1))
    assert len(changed) > 0
    # every changed frame is a closure: lips shut, pressed
    assert np.all(closed.coeffs[changed, JAW] == 0.0)
    assert np.all(closed.coeffs[changed][:, PRESS] >= closures.CLOSURE_PRESS - 1e-6)
    np.testing.assert_array_equal(closed.speech, plain.speech)


def test_streamed_equals_whole_file(
    files_model: MotionModel, speech: tuple[np.ndarray, list]
) -> None:
    pcm, _ = speech
    whole = infer_file(files_model, pcm)
    rng = np.random.default_rng(3)
    streamer, closer, parts, i = MotionStreamer(files_model), ClosurePass(files_model.fps), [], 0
    while i < len(pcm):
        n = int(rng.integers(0, 3 * SR))
        chunk = pcm[i : i + n]
        parts.append(closer.push(chunk, streamer.push(chunk)))
        i += n
    parts.append(closer.flush(streamer.flush()))
    streamed = MotionFrames.concat(parts, len(MOUTH_CHANNELS))
    np.testing.assert_array_equal(streamed.index, np.arange(len(whole)))
    np.testing.assert_allclose(streamed.coeffs, whole.coeffs, atol=1e-5)
    assert closer.closures > 0


def test_recogniser_skips_long_pauses(
    files_model: MotionModel, speech: tuple[np.ndarray, list], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A block of silence between speech is never decoded; speech with short pauses is."""
    pcm = speech[0][: 6 * SR]
    audio = np.concatenate([pcm, np.zeros(14 * SR, np.float32), pcm])
    recogniser = closures._recogniser()
    assert recogniser is not None
    heard: list[int] = []
    hear = recogniser.bilabials

    def spy(x: np.ndarray) -> list[tuple[float, float]]:
        heard.append(len(x))
        return hear(x)

    monkeypatch.setattr(recogniser, "bilabials", spy)
    infer_file(files_model, audio)
    assert 10 * SR < sum(heard) < 14 * SR  # both 6 s of speech, not the 14 s pause


def test_hearing_spans_widen_speech_and_hear_what_no_frame_covers() -> None:
    fps, start, n = 25, 10 * SR, 10 * SR  # the second 10 s block
    m = round(closures.HEAR_MARGIN_S * fps)
    spf = SR // fps
    speech = np.zeros(250, np.float32)
    speech[25:50] = 0.9  # 1.0-2.0 s into the block
    speech[60:62] = 0.9  # a gap shorter than two margins: joined
    speech[200:210] = 0.5
    frames = MotionFrames(
        np.arange(250) + 250, np.zeros((250, len(MOUTH_CHANNELS)), np.float32), speech
    )
    spans = closures.hearing_spans(frames, fps, start, n)
    assert spans == [((25 - m) * spf, (62 + m) * spf), ((200 - m) * spf, (210 + m) * spf)]
    quiet = MotionFrames(frames.index, frames.coeffs, np.zeros(250, np.float32))
    assert closures.hearing_spans(quiet, fps, start, n) == []
    # frames only for the first half: the second half is heard, whatever the first says
    half = MotionFrames(quiet.index[:125], quiet.coeffs[:125], quiet.speech[:125])
    assert closures.hearing_spans(half, fps, start, n) == [(max(0, (125 - m) * spf), n)]
    # speech at the block's edges is clipped to the block
    edge = MotionFrames(frames.index, frames.coeffs, np.ones(250, np.float32))
    assert closures.hearing_spans(edge, fps, start, n) == [(0, n)]


def test_only_dips_are_closed() -> None:
    """A recognised bilabial where the network's mouth is wide open is ignored; one at a dip
    is closed at the dip's lowest frame; spans outside the frames do nothing."""
    coeffs = np.zeros((50, len(MOUTH_CHANNELS)), np.float32)
    coeffs[:, JAW] = 0.6
    coeffs[10:13, JAW] = [0.3, 0.2, 0.25]  # a dip
    before = coeffs.copy()
    made = closures.close_spans(coeffs, [(0.40, 0.48), (0.8, 0.9), (5.0, 5.1)], fps=25)
    assert made == 1
    assert coeffs[11, JAW] == 0.0 and np.all(coeffs[11, PRESS] == closures.CLOSURE_PRESS)
    rest = np.ones(50, bool)
    rest[11] = False
    np.testing.assert_array_equal(coeffs[rest], before[rest])


def test_deep_dips_between_openings_are_closed() -> None:
    """The network's own dip between openings, deep enough, is closed at its lowest frame;
    a shallow dip, a dip that only rises on one side and a mouth already shut are left."""
    coeffs = np.zeros((60, len(MOUTH_CHANNELS)), np.float32)
    coeffs[:, JAW] = 0.6
    coeffs[10:13, JAW] = [0.35, 0.2, 0.3]  # deep dip between openings (0.2 <= 0.4 * 0.6)
    coeffs[20:23, JAW] = [0.45, 0.3, 0.45]  # shallow: 0.3 > 0.24
    coeffs[30:40, JAW] = 0.0  # a pause...
    coeffs[40, JAW] = 0.1  # ...then a dip that rises on one side only
    coeffs[41:43, JAW] = [0.02, 0.05]
    before = coeffs.copy()
    made = closures.close_dips(coeffs, fps=25)
    assert made == 1
    assert coeffs[11, JAW] == 0.0 and np.all(coeffs[11, PRESS] == closures.CLOSURE_PRESS)
    rest = np.ones(60, bool)
    rest[11] = False
    np.testing.assert_array_equal(coeffs[rest], before[rest])
    assert closures.close_dips(coeffs[:2].copy(), fps=25) == 0


def test_live_model_passes_frames_through_and_no_recogniser_closes_dips_only(
    files_model: MotionModel,
    speech: tuple[np.ndarray, list],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pcm = speech[0][: 4 * SR]
    live = load_motion_model(provider="cpu")
    assert live.causal
    np.testing.assert_array_equal(infer_file(live, pcm).coeffs, infer(live, pcm).coeffs)

    def missing() -> None:
        raise ImportError("no pocketsphinx")

    monkeypatch.setattr(closures._Recogniser, "__init__", lambda self: missing())
    closures._recogniser.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="headcast.models.motion.closures"):
            out = infer_file(files_model, pcm)
        # only the network's own dips are closed (4 s: one block)
        expected = infer(files_model, pcm).coeffs.copy()
        closures.close_dips(expected, files_model.fps)
        np.testing.assert_array_equal(out.coeffs, expected)
        assert "no phone recogniser" in caplog.text
    finally:
        closures._recogniser.cache_clear()
