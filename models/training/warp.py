"""Vocal-tract-length warping of log-mel features, a training augmentation.

A longer or shorter vocal tract moves every formant by about the same factor. Warping
the frequency axis of a crop's mel spectrum by a random factor gives the network
speakers it has not heard without changing the pitch or the timing (the rate shift of
the recorded copies moves all three together). Output bin ``k`` at centre frequency
``f_k`` takes the input's features at ``alpha * f_k``, interpolated linearly between
the neighbouring bins and held at the edge bins beyond the range: ``alpha > 1`` lowers
the formants (a longer tract), ``alpha < 1`` raises them.
"""

from __future__ import annotations

import numpy as np

from headcast.models.audio.features import N_MELS, mel_centres_hz

__all__ = ["warp_indices", "warp_mel"]


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
