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


def _square(x: int) -> tuple[int, int]:
    import os

    return x * x, os.getpid()


def _fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is bad")
    return x


def _dies(x: int) -> int:
    import os

    os._exit(7)


def test_every_job_runs_in_a_process_of_its_own_in_order_and_errors_come_back() -> None:
    import os

    from headcast.models.training.jobs import in_fresh_processes

    seen: list[tuple[int, int]] = []
    out = in_fresh_processes(_square, range(40), 2, lambda done, total: seen.append((done, total)))
    assert [v for v, _ in out] == [x * x for x in range(40)]
    pids = [pid for _, pid in out]
    assert len(set(pids)) == 40 and os.getpid() not in pids
    assert seen[-1] == (40, 40) and len(seen) == 40
    assert in_fresh_processes(_square, [], 2) == []
    with pytest.raises(ValueError, match="three is bad"):
        in_fresh_processes(_fails_on_three, range(8), 2)
    with pytest.raises(RuntimeError, match="exit code 7"):
        in_fresh_processes(_dies, [1], 1)
