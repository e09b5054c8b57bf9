"""Vocal-tract warping of training features: formants move by the factor, nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from headcast.models.audio.features import N_MELS, mel_centres_hz
from headcast.models.training.warp import warp_mel

torch = pytest.importorskip("torch")

from headcast.models.training.dataset import Example  # noqa: E402
from headcast.models.training.net import NetConfig  # noqa: E402
from headcast.models.training.train import Crops  # noqa: E402


def formant(hz: float, frames: int = 5) -> np.ndarray:
    """float16 (frames, N_MELS) features with one peak at ``hz`` on a flat floor."""
    centres = mel_centres_hz()
    row = -3.0 + 3.0 * np.exp(-0.5 * ((centres - hz) / (0.06 * hz)) ** 2)
    return np.tile(row, (frames, 1)).astype(np.float16)


def peak_hz(feats: np.ndarray) -> float:
    return float(mel_centres_hz()[int(np.argmax(feats[0]))])


def test_warp_moves_a_formant_by_the_factor_and_keeps_shape() -> None:
    x = formant(1200.0)
    assert warp_mel(x, 1.0) is x
    for alpha in (0.87, 1.15):
        y = warp_mel(x, alpha)
        assert y.shape == x.shape and y.dtype == x.dtype
        # alpha > 1 reads higher frequencies into each bin: the formant moves down
        assert peak_hz(y) == pytest.approx(1200.0 / alpha, rel=0.04)
        assert float(y.min()) >= float(x.min()) - 1e-3 and float(y.max()) <= float(x.max()) + 1e-3


def test_crops_draw_a_new_warp_for_each_crop() -> None:
    net_cfg = NetConfig(channels=8)
    n = 40
    ex = Example(
        formant(2000.0, n),
        np.zeros((n, 16), np.float16),
        np.ones(n, np.float16),
        np.zeros(n, np.float16),
        "flite:slt",
    )
    plain = Crops([ex], net_cfg, crop=20, seed=0).batch(16)["mel"].numpy()
    warped = Crops([ex], net_cfg, crop=20, seed=0, warp=0.15).batch(16)["mel"].numpy()
    # The crop ends on the example's frames (its start is the stream-start pad).
    (rest,) = {peak_hz(m[-1:]) for m in plain}  # the bin nearest 2000 Hz
    peaks = {peak_hz(m[-1:]) for m in warped}
    assert len(peaks) >= 4 and min(peaks) < 0.95 * rest and max(peaks) > 1.05 * rest
    assert all(0.97 * rest / 1.15 <= p <= 1.03 * rest / 0.85 for p in peaks)


def test_frequency_masks_hide_bands_behind_the_frame_level() -> None:
    from headcast.models.training.warp import MASKS, mask_bands

    rng = np.random.default_rng(3)
    feats = rng.normal(size=(50, N_MELS)).astype(np.float16)
    assert mask_bands(feats, rng, 0) is feats
    changed = 0
    for _ in range(40):
        out = mask_bands(feats, rng, 8)
        assert out.shape == feats.shape and out.dtype == feats.dtype
        cols = np.flatnonzero((out != feats).any(axis=0))
        assert len(cols) <= MASKS * 8
        level = feats.astype(np.float32).mean(axis=1).astype(np.float16)
        for k in cols:  # every changed bin holds its frame's mean level
            np.testing.assert_array_equal(out[:, k], level)
        changed += len(cols)
    assert changed > 40 * MASKS * 2  # bands are drawn, not always empty
    assert np.array_equal(feats, feats.copy())  # the input is left as it was
