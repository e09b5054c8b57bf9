"""Vocal-tract-length warping of log-mel features, a training augmentation.

A longer or shorter vocal tract moves every formant by about the same factor. Warping
the frequency axis of a crop's mel spectrum by a random factor gives the network
speakers it has not heard without changing the pitch or the timing (the rate shift of
the recorded copies moves all three together). Output bin ``k`` at centre frequency
``f_k`` takes the input's features at ``alpha * f_k``, interpolated linearly between
the neighbouring bins and held at the edge bins beyond the range: ``alpha > 1`` lowers
the formants (a longer tract), ``alpha < 1`` raises them.

Frequency masking (:func:`mask_bands`) hides up to two bands of bins in a crop behind
each frame's mean level: another microphone, room or line that loses part of the
spectrum, so no single band can be relied on.
"""

from __future__ import annotations

import numpy as np

from headcast.models.audio.features import N_MELS, mel_centres_hz

__all__ = ["mask_bands", "warp_indices", "warp_mel"]

MASKS = 2  # bands masked per crop by :func:`mask_bands`


def warp_indices(alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For factor ``alpha``: lower bin int (N_MELS,), upper bin, float32 weight of the upper."""
    centres = mel_centres_hz()
    pos = np.interp(alpha * centres, centres, np.arange(N_MELS, dtype=np.float64))
    lower = np.floor(pos).astype(np.int64)
    upper = np.minimum(lower + 1, N_MELS - 1)
    return lower, upper, (pos - lower).astype(np.float32)


def warp_mel(feats: np.ndarray, alpha: float) -> np.ndarray:
    """(T, N_MELS) features -> the same shape and dtype, frequency axis warped by ``alpha``."""
    if alpha == 1.0:
        return feats
    lower, upper, w = warp_indices(alpha)
    x = feats.astype(np.float32, copy=False)
    return (x[:, lower] * (1.0 - w) + x[:, upper] * w).astype(feats.dtype)


def mask_bands(feats: np.ndarray, rng: np.random.Generator, width: int) -> np.ndarray:
    """(T, N_MELS) features -> a copy where :data:`MASKS` bands of 0..``width`` bins
    (each placed at random) hold each frame's mean over all bins."""
    if width <= 0:
        return feats
    out = feats.copy()
    level = feats.astype(np.float32).mean(axis=1, keepdims=True).astype(feats.dtype)
    for _ in range(MASKS):
        w = int(rng.integers(0, width + 1))
        if w:
            k = int(rng.integers(0, N_MELS - w + 1))
            out[:, k : k + w] = level
    return out
