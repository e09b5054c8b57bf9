"""Phones -> visemes -> ARKit targets: closures, anticipatory rounding, silence."""

from __future__ import annotations

import numpy as np

from headcast.models.channels import MOUTH_CHANNELS
from headcast.models.training.visemes import (
    BILABIAL,
    SILENCE,
    cmu_visemes,
    espeak_visemes,
    make_targets,
    viseme_segments,
)

RATE = 100.0
JAW = MOUTH_CHANNELS.index("jawOpen")
PUCKER = MOUTH_CHANNELS.index("mouthPucker")


def frame(t: float) -> int:
    return round(t * RATE)


def test_phone_sets_map_bilabials_vowels_and_pauses() -> None:
    for p in ("p", "b", "m"):
        assert cmu_visemes(p) == (BILABIAL,)
        assert espeak_visemes(p) == (BILABIAL,)
    assert cmu_visemes("pau") == (SILENCE,)
    assert espeak_visemes("_:") == (SILENCE,)
    assert cmu_visemes("ay") == ("AA", "IY")  # diphthongs move
    assert espeak_visemes("aI") == ("AA", "IY")
    assert espeak_visemes("u:") == ("UW",)
    assert cmu_visemes("aa1") == ("AA",)  # stress digits are ignored


def test_diphthongs_split_evenly() -> None:
    segs = viseme_segments([(("AA", "IY"), 1.0, 1.2)])
    assert segs == [("AA", 1.0, 1.1), ("IY", 1.1, 1.2)]


def test_lips_close_inside_and_just_before_a_bilabial() -> None:
    segs = [(SILENCE, 0.0, 0.3), ("AA", 0.3, 0.5), (BILABIAL, 0.5, 0.58), ("AA", 0.58, 0.8),
            (SILENCE, 0.8, 1.2)]  # fmt: skip
    tg = make_targets(segs, 120, RATE)
    jaw = tg.coeffs[:, JAW]
    assert jaw[frame(0.4)] > 0.5  # open vowel
    assert jaw[frame(0.52) : frame(0.56)].max() < 0.1 * jaw[frame(0.4)]  # shut during the closure
    assert jaw[frame(0.49)] < 0.5 * jaw[frame(0.4)]  # already closing before it starts
    assert jaw[frame(0.7)] > 0.5
    assert tg.closure[frame(0.52)] == 1.0 and tg.closure[frame(0.4)] == 0.0


def test_rounding_anticipates_the_vowel_through_a_bilabial() -> None:
    segs = [(SILENCE, 0.0, 0.3), ("IY", 0.3, 0.45), (BILABIAL, 0.45, 0.52), ("UW", 0.52, 0.7),
            (SILENCE, 0.7, 1.0)]  # fmt: skip
    tg = make_targets(segs, 100, RATE)
    pucker = tg.coeffs[:, PUCKER]
    # The lips round during /m/ already, because /uw/ follows ("i moo").
    assert pucker[frame(0.49)] > 0.3
    assert pucker[frame(0.49)] > 2 * pucker[frame(0.35)]


def test_silence_is_closed_and_not_speech() -> None:
    segs = [(SILENCE, 0.0, 0.5), ("AA", 0.5, 0.7), (SILENCE, 0.7, 1.5)]
    tg = make_targets(segs, 150, RATE)
    assert tg.coeffs[frame(1.0) :].max() < 0.01
    assert tg.coeffs[: frame(0.3)].max() < 0.01
    assert tg.speech[frame(0.6)] == 1.0 and tg.speech[frame(1.0)] == 0.0
    assert tg.coeffs.dtype == np.float32 and tg.coeffs.shape == (150, len(MOUTH_CHANNELS))
    assert tg.coeffs.min() >= 0.0 and tg.coeffs.max() <= 1.0
