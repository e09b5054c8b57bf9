"""Synthesis engines with phone timings, augmentation, session assembly."""

from __future__ import annotations

import numpy as np
import pytest

from headcast.models.audio.features import MEL_RATE, SAMPLE_RATE
from headcast.models.training import augment
from headcast.models.training.dataset import (
    HELDOUT_VOICES,
    TRAIN_VOICES,
    assemble,
    featurise,
    synthesise,
)
from headcast.models.training.synth import Voice, available_engines, synth_espeak, synth_flite
from headcast.models.training.visemes import BILABIAL

ENGINES = available_engines()
TEXT = "Bob bought a map."


def _check_timings(visemes: list, duration: float) -> None:
    starts = [s for _, s, _ in visemes]
    assert starts == sorted(starts)
    assert all(e > s for _, s, e in visemes)
    assert visemes[-1][2] <= duration + 0.25
    assert sum(v == BILABIAL for v, _, _ in visemes) >= 3  # b, b, m


@pytest.mark.skipif(not ENGINES["flite"], reason="flite not installed")
def test_flite_gives_audio_and_phone_timings() -> None:
    u = synth_flite(TEXT, "kal16", 1.0)
    assert u.rate == 16_000 and len(u.audio) > 0.5 * u.rate
    _check_timings(u.visemes, len(u.audio) / u.rate)
    slow = synth_flite(TEXT, "kal16", 1.3)
    assert len(slow.audio) > 1.15 * len(u.audio)  # tempo control works


@pytest.mark.skipif(not ENGINES["espeak"], reason="libespeak-ng not installed")
def test_espeak_phoneme_events_give_timings() -> None:
    u = synth_espeak(TEXT, "en-us+f3", 1.0)
    assert len(u.audio) > 0.5 * u.rate
    _check_timings(u.visemes, len(u.audio) / u.rate)
    # The first bilabial starts where the audio gets loud (within 60 ms).
    first_b = next(s for v, s, _ in u.visemes if v == BILABIAL)
    env = np.abs(u.audio)
    onset = np.argmax(env > 0.05 * env.max()) / u.rate
    assert abs(onset - first_b) < 0.06


def test_train_and_heldout_voices_do_not_overlap() -> None:
    assert len(TRAIN_VOICES) >= 10
    assert not set(TRAIN_VOICES) & set(HELDOUT_VOICES)


@pytest.mark.skipif(not ENGINES["flite"], reason="flite not installed")
def test_sessions_have_pauses_and_aligned_targets() -> None:
    rng = np.random.default_rng(3)
    utts = synthesise(Voice("flite", "kal16"), 3, rng)
    sessions = assemble(utts, "flite:kal16", rng)
    sess = sessions[0]
    dur = len(sess.audio) / SAMPLE_RATE
    assert sess.visemes[0][0] == "sil" and sess.visemes[-1][0] == "sil"
    assert abs(sess.visemes[-1][2] - dur) < 1e-3
    ex = featurise(sess.audio, sess.visemes, sess.voice)
    assert len(ex.feats) == len(ex.coeffs) == len(ex.speech)
    assert abs(len(ex.feats) / MEL_RATE - dur) < 0.05
    # Speech frames are louder than silence frames in the features.
    loud = ex.feats.astype(np.float32).mean(1)
    assert loud[ex.speech > 0.5].mean() > loud[ex.speech < 0.5].mean() + 0.5


def _speech(seconds: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.1 * rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 4 * t) > 0)).astype(np.float32)


def test_noise_hits_the_requested_snr() -> None:
    x = _speech()
    y = augment.add_noise(x, np.random.default_rng(1), 20.0)
    noise = y - x
    active = x != 0
    snr = 10 * np.log10(np.mean(x[active] ** 2) / np.mean(noise**2))
    assert abs(snr - 20.0) < 1.5


def test_reverb_telephone_and_eq_keep_length_and_level() -> None:
    x = _speech()
    rng = np.random.default_rng(2)
    for y in (augment.reverb(x, rng, 0.5), augment.random_eq(x, rng)):
        assert y.shape == x.shape and np.isfinite(y).all()
        assert 0.5 < np.sqrt(np.mean(y**2) / np.mean(x**2)) < 2.0
    tel = augment.telephone(x)
    spec = np.abs(np.fft.rfft(tel))
    f = np.fft.rfftfreq(len(tel), 1 / SAMPLE_RATE)
    assert spec[f > 5000].mean() < 0.05 * spec[(f > 800) & (f < 2500)].mean()


def test_gain_quantises_to_16_bit_and_clips() -> None:
    y = augment.gain_and_quantise(_speech(), 30.0)
    assert np.abs(y).max() <= 1.0
    np.testing.assert_allclose(y * 32767, np.round(y * 32767), atol=1e-3)


def test_opus_round_trip_is_aligned_and_lossy() -> None:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    x = (0.3 * np.sin(2 * np.pi * 300 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    y = augment.opus_round_trip(x, 16_000)
    assert y.shape == x.shape
    assert np.corrcoef(x, y)[0, 1] > 0.9  # no delay left: Ogg pre-skip is honoured
    assert not np.allclose(x, y, atol=1e-3)


def test_validation_split_uses_training_voices_of_every_engine() -> None:
    from headcast.models.training.evaluate import VALIDATION_VOICES

    val = TRAIN_VOICES[VALIDATION_VOICES]
    assert set(val) <= set(TRAIN_VOICES) and set(val).isdisjoint(HELDOUT_VOICES)
    assert {v.engine for v in val} == {"flite", "festival", "espeak"}
