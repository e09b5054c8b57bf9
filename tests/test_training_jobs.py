"""Data jobs give the same audio whatever the number of worker processes."""

from __future__ import annotations

import numpy as np
import pytest

from headcast.models.training.synth import Voice, available_engines


@pytest.mark.skipif(not available_engines()["espeak"], reason="libespeak-ng not installed")
def test_held_out_audio_is_the_same_with_one_worker_as_with_two() -> None:
    """libespeak-ng keeps state between calls in a process (its Klatt voices' noise, among
    others): with one worker every voice used to be synthesised after the ones before it
    in the same process, and the held-out audio differed from a two-worker run."""
    from headcast.models.training.heldout import heldout_audio

    voices = [
        Voice("espeak", "en-us+klatt4"),
        Voice("espeak", "en+michel"),
        Voice("espeak", "en-us+klatt4"),
    ]
    one = heldout_audio(voices, 1, 99, workers=1, strength=0.0)
    two = heldout_audio(voices, 1, 99, workers=2, strength=0.0)
    assert [n for n, _, _ in one] == [n for n, _, _ in two]
    for (name, a, _), (_, b, _) in zip(one, two, strict=True):
        assert np.array_equal(a, b), name
