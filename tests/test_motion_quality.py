"""The shipped model lip-syncs: follows openness, closes on /p b m/, rests in silence;
the model for files (200 ms look-ahead) rests in silence too."""

from __future__ import annotations

import numpy as np
import pytest

from headcast.models.audio.features import SAMPLE_RATE, to_mono_16k
from headcast.models.motion import MotionModel, infer, load_motion_model
from headcast.models.training.dataset import _fill_gaps
from headcast.models.training.evaluate import energy_baseline, score
from headcast.models.training.synth import available_engines, synth_flite
from headcast.models.training.visemes import make_targets

FPS = 25


@pytest.fixture(scope="module")
def model() -> MotionModel:
    return load_motion_model(provider="cpu")


@pytest.fixture(scope="module", params=[False, True], ids=["live", "files"])
def either(request: pytest.FixtureRequest) -> MotionModel:
    m = load_motion_model(provider="cpu", offline=request.param)
    assert m.metadata["causal"] == ("false" if request.param else "true")
    return m


@pytest.mark.skipif(not available_engines()["flite"], reason="flite not installed")
def test_held_out_voice_beats_loudness(model: MotionModel) -> None:
    # awb is never heard in training.
    u = synth_flite("Bob bought a bamboo map, and my mom paid for the pumpkin pie.", "awb", 1.0)
    lead = np.zeros(SAMPLE_RATE // 2, np.float32)
    audio = np.concatenate([lead, to_mono_16k(u.audio, u.rate), lead])
    visemes = [(v, s + 0.5, e + 0.5) for v, s, e in u.visemes]
    visemes = _fill_gaps(visemes, len(audio) / SAMPLE_RATE)
    frames = infer(model, audio)
    truth = make_targets(visemes, len(frames), FPS).coeffs[:, 0]
    ours = score("awb", frames.coeffs[:, 0], truth, visemes, FPS)
    base = score("awb", energy_baseline(audio, len(frames), FPS), truth, visemes, FPS)
    assert ours.r > 0.75 and ours.r > base.r + 0.1
    assert ours.lag == 0
    assert ours.n_closures >= 6 and ours.closure >= 0.6 > base.closure
    assert frames.speech[: FPS // 4].max() < 0.5 and frames.speech[len(frames) // 2] > 0.5


def test_silence_and_noise_keep_the_mouth_shut(either: MotionModel) -> None:
    rng = np.random.default_rng(0)
    for pcm in (np.zeros(3 * SAMPLE_RATE, np.float32),
                (10 ** (-50 / 20) * rng.standard_normal(3 * SAMPLE_RATE)).astype(np.float32)):  # fmt: skip
        frames = infer(either, pcm)
        assert frames.coeffs[:, 0].max() < 0.05
        assert frames.speech.max() < 0.5


@pytest.mark.skipif(not available_engines()["flite"], reason="flite not installed")
def test_breakdown_scores_each_augmentation_alone(model: MotionModel) -> None:
    from headcast.models.training.evaluate import breakdown

    u = synth_flite("Bob bought a bamboo map, and my mom paid for the pumpkin pie.", "awb", 1.0)
    lead = np.zeros(SAMPLE_RATE // 2, np.float32)
    audio = np.concatenate([lead, to_mono_16k(u.audio, u.rate), lead])
    visemes = _fill_gaps([(v, s + 0.5, e + 0.5) for v, s, e in u.visemes], len(audio) / 16_000)
    rows = breakdown(model, [("awb", audio, visemes)])
    assert next(iter(rows)) == "clean" and {"reverberation", "noise", "whole chain"} <= set(rows)
    assert all(np.isfinite(m["r"]) and m["n_closures"] >= 6 for m in rows.values())
    assert rows["clean"]["r"] > 0.75
    # each condition is the same speech degraded: none scores much above clean, and a
    # room costs r (the augmentation was applied)
    assert all(m["r"] < rows["clean"]["r"] + 0.05 for m in rows.values())
    assert rows["reverberation"]["r"] < rows["clean"]["r"] - 0.02
