"""Measuring what a viewer received: mouth openness from pixels, audio loudness, A/V lag.

Used by the tests and ``headcast bench live``; numpy only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from headcast.models.channels import CHANNEL_INDEX, zeros


class MouthMeter:
    """How open the avatar's mouth is in a frame, from pixels alone.

    The cavity is where a jawOpen=1 render is dark and the neutral render is not;
    openness is the fraction of that region that is dark in the frame, scaled so that
    jawOpen=1 reads 1. Lips, teeth and the dark clothing below the chin are never in
    the region, so the idle head drift does not read as an open mouth.
    """

    DARK = 70.0  # luma below which a pixel counts as mouth cavity
    GAIN = 40.0  # luma drop from the neutral render that marks the cavity

    def __init__(
        self, render: Callable[[np.ndarray], np.ndarray], rest: np.ndarray | None = None
    ) -> None:
        """``rest``: the coefficients of the face at rest, if not all zero (a smiling
        portrait at ``neutral`` rests with its smile relaxed: negative smile channels)."""
        base = zeros() if rest is None else np.asarray(rest, np.float32)
        closed = render(base).astype(np.float32).mean(axis=-1)
        c = base.copy()
        c[CHANNEL_INDEX["jawOpen"]] = 1.0
        opened = render(c).astype(np.float32).mean(axis=-1)
        self.mask = ((closed - opened) > self.GAIN) & (opened < self.DARK)
        assert self.mask.sum() > 50, "jawOpen=1 shows no mouth cavity"

    def measure(self, frame: np.ndarray) -> float:
        """0 (closed) .. 1 (as open as jawOpen=1)."""
        luma = frame.astype(np.float32).mean(axis=-1)
        return float(((luma < self.DARK) & self.mask).sum() / self.mask.sum())


def mouth_series(video: list[tuple[float, np.ndarray]], meter: MouthMeter) -> tuple[Any, Any]:
    """(arrival times float64 (N,), mouth openness float32 (N,)) of received frames."""
    t = np.array([ts for ts, _ in video], np.float64)
    m = np.array([meter.measure(f) for _, f in video], np.float32)
    return t, m


def audio_timeline(audio: list[tuple[float, np.ndarray, int]]) -> tuple[Any, Any]:
    """Received audio as (sample times float64 (M,), samples float32 (M,))."""
    if not audio:
        return np.zeros(0), np.zeros(0, np.float32)
    times = [t + np.arange(len(pcm)) / rate for t, pcm, rate in audio]
    return np.concatenate(times), np.concatenate([pcm for _, pcm, _ in audio])


def envelope(at: np.ndarray, times: np.ndarray, pcm: np.ndarray, window_s: float) -> Any:
    """RMS of the audio within ``window_s`` centred on each time in ``at``."""
    lo = np.searchsorted(times, at - window_s / 2)
    hi = np.searchsorted(times, at + window_s / 2)
    sq = np.concatenate([[0.0], np.cumsum(pcm.astype(np.float64) ** 2)])
    n = np.maximum(hi - lo, 1)
    return np.sqrt((sq[hi] - sq[lo]) / n)


def av_lag_ms(
    t_video: np.ndarray, mouth: np.ndarray, t_audio: np.ndarray, pcm: np.ndarray
) -> tuple[float, float]:
    """Lag (ms, positive = video late) maximising the correlation of mouth openness with the
    audio loudness, searched over ±200 ms in 5 ms steps; and that correlation."""
    best = (0.0, -1.0)
    for d_ms in range(-200, 201, 5):
        env = envelope(t_video - d_ms / 1000.0, t_audio, pcm, 0.04)
        if env.std() == 0 or mouth.std() == 0:
            continue
        r = float(np.corrcoef(mouth, env)[0, 1])
        if r > best[1]:
            best = (float(d_ms), r)
    return best
