"""Hesitant and whispered synthetic speech (models/training/hesitations.py)."""

from __future__ import annotations

import numpy as np
import pytest

from headcast.models.audio.features import SAMPLE_RATE
from headcast.models.training.dataset import HELDOUT_VOICES, synthesise
from headcast.models.training.hesitations import (
    FILLERS,
    WHISPER_VOICES,
    build_hesitant,
    filler,
    with_fillers,
)
from headcast.models.training.synth import Voice, available_engines, synth_espeak
from headcast.models.training.visemes import BILABIAL

ENGINES = available_engines()
needs_espeak = pytest.mark.skipif(not ENGINES["espeak"], reason="libespeak-ng not installed")


@needs_espeak
def test_a_filler_is_held_longer_than_the_engine_reads_it() -> None:
    rng = np.random.default_rng(3)
    voice = Voice("espeak", "en-us")
    plain = synth_espeak("uh", "en-us", 1.0)
    plain_s = len(plain.audio) / plain.rate
    held = [filler(voice, rng) for _ in range(8)]
    for audio, segs, text in held:
        assert text in FILLERS
        assert len(audio) and segs
        # the visemes cover the audio, in order
        assert segs[-1][2] <= len(audio) / SAMPLE_RATE + 1e-6
        assert all(s < e for _, s, e in segs)
    assert np.median([len(a) / SAMPLE_RATE for a, _, _ in held]) > 1.2 * plain_s
    # "um" and "hmm" end shut: their /m/ is a bilabial
    ums = [segs for _, segs, text in held if text.endswith("m")]
    assert all(any(v == BILABIAL for v, _, _ in segs) for segs in ums)


@needs_espeak
def test_fillers_come_between_utterances_and_keep_them() -> None:
    rng = np.random.default_rng(0)
    voice = Voice("espeak", "en-us+f2")
    utts = synthesise(voice, 6, rng)
    mixed = with_fillers(voice, utts, rng)
    texts = [t for _, _, t in mixed]
    assert [t for t in texts if t not in FILLERS] == [t for _, _, t in utts]
    assert 0 < sum(t in FILLERS for t in texts) <= len(utts)


@needs_espeak
def test_whispers_are_speech_with_timings_and_never_held_out() -> None:
    held_out = {str(v) for v in HELDOUT_VOICES}
    assert not held_out & {str(v) for v in WHISPER_VOICES}
    audio, segs, _ = synthesise(WHISPER_VOICES[0], 1, np.random.default_rng(1))[0]
    rms = float(np.sqrt(np.mean(audio**2)))
    assert rms > 1e-3 and len(segs) > 3


@pytest.mark.skipif(
    not (ENGINES["espeak"] and ENGINES["flite"]), reason="espeak-ng and flite needed"
)
def test_the_set_has_both_whisper_voices_and_labels_every_frame() -> None:
    examples = build_hesitant(2, 1, 0, 1, speaking=(Voice("flite", "slt"),))
    voices = {e.voice for e in examples}
    assert {str(v) for v in WHISPER_VOICES} <= voices
    assert len(voices) > len(WHISPER_VOICES)
    for e in examples:
        assert len(e.feats) == len(e.coeffs) == len(e.speech) == len(e.closure)
        assert e.speech.max() == 1.0 and e.speech.min() == 0.0
