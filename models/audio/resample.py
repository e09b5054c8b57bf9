"""Polyphase resampling to 16 kHz, the same filter for whole arrays and live chunks.

A windowed-sinc low-pass (Kaiser window) is evaluated directly per output sample:
``y[k] = sum_j x[n0 - j] * h[p + j*U]`` with ``m = k*D + delay``, ``n0 = m // U`` and
``p = m % U`` for the rational ratio ``U/D`` (see Crochiere & Rabiner, *Multirate
Digital Signal Processing*, ch. 2). The filter is centred, so output sample ``k`` is at
time ``k / 16000`` s exactly; a chunk's outputs are emitted once the input they need has
arrived, which adds ``TAPS_PER_SIDE`` input samples of latency (<= 2 ms at 8 kHz).
"""

from __future__ import annotations

from functools import lru_cache
from math import gcd

import numpy as np
from scipy.signal import firwin

MIN_INPUT_RATE = 4_000  # Hz: any input rate in 4-192 kHz is taken (8-48 kHz is typical)
MAX_INPUT_RATE = 192_000  # Hz

TAPS_PER_SIDE = 16  # zero crossings of the sinc on each side, at the lower of the two rates
KAISER_BETA = 6.0  # ~60 dB stop band
CUTOFF = 0.92  # fraction of the lower Nyquist frequency kept
EMIT_BLOCK = 512  # output samples computed at a time


@lru_cache(maxsize=16)
def _filter(up: int, down: int) -> np.ndarray:
    """Polyphase low-pass for ``up/down``: float64 (taps,), gain ``up`` (interpolation)."""
    factor = max(up, down)
    numtaps = 2 * TAPS_PER_SIDE * factor + 1
    taps = firwin(numtaps, CUTOFF / factor, window=("kaiser", KAISER_BETA)) * up
    return np.asarray(taps, np.float64)


class Resampler:
    """Streaming rational resampler ``in_rate -> out_rate``; not thread-safe.

    ``push(x)`` takes float (N,) and returns float32 (M,) output samples that became
    final; ``flush()`` pads with zeros and returns the rest so that the total output
    length is ``ceil(N_total * out_rate / in_rate)``.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        g = gcd(in_rate, out_rate)
        self.up, self.down = out_rate // g, in_rate // g
        self.passthrough = self.up == self.down
        self._h = _filter(self.up, self.down) if not self.passthrough else np.ones(1)
        self._delay = (len(self._h) - 1) // 2
        self._taps = -(-len(self._h) // self.up)  # taps per phase
        # Pad h so every phase has the same number of taps.
        self._hp = np.zeros(self._taps * self.up, np.float64)
        self._hp[: len(self._h)] = self._h
        self.reset()

    def reset(self) -> None:
        # Input history with `taps` zeros before the first sample (x[n<0] = 0).
        self._buf = np.zeros(self._taps, np.float64)
        self._buf_start = -self._taps  # input index of self._buf[0]
        self._n_in = 0
        self._n_out = 0

    def _ready(self, k_start: int, k_end: int) -> np.ndarray:
        """Outputs ``k_start .. k_end-1`` from the buffer (all inputs present)."""
        k = np.arange(k_start, k_end, dtype=np.int64)
        m = k * self.down + self._delay
        n0 = m // self.up
        phase = m - n0 * self.up
        j = np.arange(self._taps, dtype=np.int64)
        idx = n0[:, None] - j[None, :] - self._buf_start  # (K, taps) into the buffer
        coef = self._hp[phase[:, None] + j[None, :] * self.up]
        return np.einsum("kt,kt->k", self._buf[idx], coef)

    def _emit(self, k_end: int) -> np.ndarray:
        if k_end <= self._n_out:
            return np.zeros(0, np.float32)
        # In blocks: the (outputs x taps) gathers of one huge push would not fit in cache
        # (measured: 5.0 s for a whole minute at 44.1 kHz, 0.36 s in 1024-sample pushes).
        parts = [
            self._ready(start, min(start + EMIT_BLOCK, k_end))
            for start in range(self._n_out, k_end, EMIT_BLOCK)
        ]
        y = parts[0] if len(parts) == 1 else np.concatenate(parts)
        self._n_out = k_end
        # Keep only the history that later outputs can still reach.
        first_needed = (self._n_out * self.down + self._delay) // self.up - self._taps + 1
        drop = min(max(0, first_needed - self._buf_start), len(self._buf))
        if drop:
            self._buf = self._buf[drop:]
            self._buf_start += drop
        return y.astype(np.float32)

    def push(self, x: np.ndarray) -> np.ndarray:
        """float (N,) at ``in_rate`` -> float32 (M,) at ``out_rate``; N may be 0."""
        x = np.asarray(x, np.float64).reshape(-1)
        if self.passthrough:
            self._n_in += len(x)
            self._n_out += len(x)
            return x.astype(np.float32)
        self._buf = np.concatenate([self._buf, x])
        self._n_in += len(x)
        # Output k needs inputs up to n0 = (k*D + delay) // U  <  n_in.
        k_end = max(0, (self._n_in * self.up - self._delay - 1) // self.down + 1)
        return self._emit(k_end)

    def flush(self) -> np.ndarray:
        """Zero-pad the input and return the remaining output; then start afresh."""
        if self.passthrough:
            self.reset()
            return np.zeros(0, np.float32)
        total = -(-self._n_in * self.up // self.down)
        self._buf = np.concatenate([self._buf, np.zeros(self._taps + 1, np.float64)])
        y = self._emit(total)
        self.reset()
        return y


class BlockUpsampler:
    """Integer-factor upsampling of any block of a longer signal, with no state.

    The output for input samples ``[s, s + n)`` needs the input ``[s - pad, s + n + pad)``
    (``pad`` = :data:`TAPS_PER_SIDE`): ``__call__`` takes that extended block and returns
    the ``n * factor`` output samples, equal to what :class:`Resampler` makes for the same
    span of a continuous stream. A reader can therefore jump, repeat or restart anywhere,
    and the filter adds no delay of its own.
    """

    def __init__(self, factor: int) -> None:
        if factor < 1:
            raise ValueError(f"upsampling factor must be >= 1, got {factor}")
        self.factor = factor
        self.pad = TAPS_PER_SIDE
        h = _filter(factor, 1)  # 2 * pad * factor + 1 taps, centred
        # Polyphase: output factor * m + p = sum_t x[m + t] * h[factor * (2 pad - t) + p]
        # over a window of 2 pad + 1 inputs: one small matrix product per block.
        taps = 2 * self.pad + 1
        padded = np.zeros(factor * taps, np.float64)
        padded[: len(h)] = h
        t = np.arange(taps)[:, None]
        phase = np.arange(factor)[None, :]
        self._bank = np.ascontiguousarray(padded[factor * (2 * self.pad - t) + phase].T)

    def __call__(self, block: np.ndarray) -> np.ndarray:
        """float (n + 2 * pad,) -> float32 (n * factor,)."""
        x = np.asarray(block, np.float64).reshape(-1)
        n = len(x) - 2 * self.pad
        if n < 0:
            raise ValueError(f"need at least {2 * self.pad} samples of context, got {len(x)}")
        if self.factor == 1:
            return x[self.pad : self.pad + n].astype(np.float32)
        out = np.empty((n, self.factor), np.float32)
        for p, taps in enumerate(self._bank):
            out[:, p] = np.correlate(x, taps, "valid")
        return out.reshape(-1)
