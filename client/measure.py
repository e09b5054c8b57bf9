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

    The region is where a jawOpen=1 render differs from the face at rest by more than
    :data:`GAIN` in luma (cavity, teeth, tongue, the lowered lip and chin), less what a
    small head movement changes (the idle drift); openness is the share of that region
    that differs from the rest render by as much in the frame, whatever the opening
    shows (teeth, tongue or cavity): on the built-in avatar 0.035 at jawOpen 0.2, 0.11 at
    0.3, 0.22 at 0.4, 0.45 at 0.6, 0.73 at 0.8; the idle head drift's poses read at most
    0.02. (It counted dark pixels alone: teeth filling a mid opening read as closed.)
    """

    GAIN = 40.0  # luma change from the rest render that counts
    # head movements whose changes are left out of the region: (channel, degrees)
    DRIFT = (("headYaw", 4.0), ("headYaw", -4.0), ("headPitch", 3.0), ("headPitch", -3.0),
             ("headRoll", 2.0), ("headRoll", -2.0))  # fmt: skip

    def __init__(
        self, render: Callable[[np.ndarray], np.ndarray], rest: np.ndarray | None = None
    ) -> None:
        """``rest``: the coefficients of the face at rest, if not all zero (a smiling
        portrait at ``neutral`` rests with its smile relaxed: negative smile channels)."""
        base = zeros() if rest is None else np.asarray(rest, np.float32)
        self.rest = self._luma(render(base))
        c = base.copy()
        c[CHANNEL_INDEX["jawOpen"]] = 1.0
        self.mask = self._changed(render(c))
        for name, degrees in self.DRIFT:
            moved = base.copy()
            moved[CHANNEL_INDEX[name]] = degrees
            self.mask &= ~self._changed(render(moved))
        assert self.mask.sum() > 50, "jawOpen=1 changes too little of the face"

    @staticmethod
    def _luma(frame: np.ndarray) -> np.ndarray:
        return frame.astype(np.float32).mean(axis=-1)

    def _changed(self, frame: np.ndarray, at: tuple[int, int] = (0, 0)) -> np.ndarray:
        x0, y0 = at
        h, w = frame.shape[:2]
        return np.abs(self._luma(frame) - self.rest[y0 : y0 + h, x0 : x0 + w]) > self.GAIN

    def measure(self, frame: np.ndarray, at: tuple[int, int] = (0, 0)) -> float:
        """0 (closed) .. 1 (as open as jawOpen=1). ``frame``: the whole frame, or a crop
        of it whose top-left corner is at ``at`` (x, y) holding the whole region."""
        x0, y0 = at
        h, w = frame.shape[:2]
        mask = self.mask[y0 : y0 + h, x0 : x0 + w]
        return float(self._changed(frame, at)[mask].sum() / self.mask.sum())


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
