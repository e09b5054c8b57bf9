"""Streaming Audio2Lip: push 16 kHz PCM in chunks of any size, get EDTalk mouth weights.

The offline path (:meth:`Audio2LipRunner.from_wav`) computes one mel spectrogram over
the whole clip, cuts a 16-hop window per 25 fps video frame and smooths the 20 mouth
weights over three frames. Here the same numbers are produced incrementally:

* mel frame ``j`` (STFT centred on sample ``200 j``) is computed once samples up to
  ``200 j + 400`` are in; the first two reflect the start of the stream, as librosa's
  centred STFT does;
* the raw weights of video frame ``i`` once its window (mel frames
  ``window_starts(i) .. + 15``) exists, i.e. 120 ms of audio past the frame plus half
  an STFT window;
* the smoothed weights of frame ``i`` once the raw ones of ``i + 1`` exist.

Only whole video frames of audio (640 samples) count as arrived, so every frame emitted
before :meth:`Audio2LipStreamer.flush` depends on exactly the samples the offline path
uses for it, and ``push`` ... ``flush`` over a clip equals ``from_wav`` on that clip
(float rounding of batched ONNX runs aside; see ``tests/test_edtalk_integration.py``).
:meth:`flush` finishes the tail the way the offline path does (reflect-padded end,
window indices clamped to the last mel frame, zero-padded smoothing).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from headcast.models.audio import SAMPLE_RATE
from headcast.models.edtalk.coeffs import MOUTH_DIM
from headcast.models.edtalk.mel import (
    FPS,
    HOP,
    MAX_ABS,
    N_FFT,
    N_MELS,
    SAMPLES_PER_FRAME,
    SMOOTH_TAPS,
    WINDOW,
    mel_of_segments,
    preemphasis,
    window_starts,
)

HALF_FFT = N_FFT // 2  # 400 samples: the centred STFT reaches this far past its centre
KEEP_MARGIN = N_FFT  # samples kept before the next mel frame's segment (end reflection)


class MouthWindows(Protocol):
    """What runs the network: :class:`models.edtalk.runtime.Audio2LipRunner`."""

    fps: int

    def from_windows(self, windows: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class LipFrames:
    """Consecutive frames: ``index`` int64 (N,) from stream start, ``mouth`` float32 (N, 20)."""

    index: np.ndarray
    mouth: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    @staticmethod
    def empty() -> LipFrames:
        return LipFrames(np.zeros(0, np.int64), np.zeros((0, MOUTH_DIM), np.float32))


def _samples_for_raw(frame: int) -> int:
    """Samples that must have arrived before the raw weights of ``frame`` can be computed."""
    last_mel = int(window_starts(np.array([frame]))[0]) + WINDOW - 1
    return max(HOP * last_mel + HALF_FFT, HALF_FFT + 1)


def lookahead_samples() -> int:
    """Audio past a frame's start needed before its smoothed weights are final.

    The worst case over the window-start pattern (it repeats every 5 frames at 25 fps),
    with arrival counted in whole frames: 3200 samples (200 ms) at 16 kHz.
    """
    worst = 0
    for i in range(2 * FPS):
        need = _samples_for_raw(i + 1)
        need = math.ceil(need / SAMPLES_PER_FRAME) * SAMPLES_PER_FRAME
        worst = max(worst, need - i * SAMPLES_PER_FRAME)
    return worst


LOOKAHEAD_SAMPLES = lookahead_samples()
assert LOOKAHEAD_SAMPLES == 3200


class Audio2LipStreamer:
    """One per session; synchronous and not thread-safe (call it from one worker).

    ``push(pcm16k)`` returns the frames that became final; ``flush()`` ends the stream
    (offline tail) and starts afresh; ``reset()`` drops everything (interrupt).
    """

    sample_rate = SAMPLE_RATE
    lookahead_s = LOOKAHEAD_SAMPLES / SAMPLE_RATE  # 0.2 s

    def __init__(self, runner: MouthWindows) -> None:
        if runner.fps != FPS:
            raise ValueError(f"Audio2Lip runs at {FPS} fps, the runner says {runner.fps}")
        self.runner = runner
        self.fps = FPS
        # Weights for a window of digital silence: what the mouth is without speech.
        silent = np.full((1, 1, N_MELS, WINDOW), -MAX_ABS, np.float32)
        self.silence = np.asarray(runner.from_windows(silent)[0], np.float32)
        self.reset()

    def reset(self) -> None:
        self._samples = 0  # samples pushed since the stream start
        self._last = 0.0  # last raw sample (pre-emphasis state)
        self._pre = np.zeros(0, np.float64)  # pre-emphasised samples from _pre_start
        self._pre_start = 0
        self._mel = np.zeros((0, N_MELS), np.float32)  # mel frames from _mel_start
        self._mel_start = 0
        self._raw = np.zeros((0, MOUTH_DIM), np.float32)  # raw weights from _raw_start
        self._raw_start = 0
        self._next = 0  # next frame to emit

    @property
    def frames_emitted(self) -> int:
        return self._next

    def snapshot(self) -> dict[str, Any]:
        """The whole stream state (a copy; the runner is shared), for :meth:`restore`."""
        return copy.deepcopy({k: v for k, v in vars(self).items() if k != "runner"})

    def restore(self, state: dict[str, Any]) -> None:
        vars(self).update(state)

    @property
    def _mel_end(self) -> int:
        return self._mel_start + len(self._mel)

    @property
    def _raw_end(self) -> int:
        return self._raw_start + len(self._raw)

    def push(self, pcm16k: np.ndarray) -> LipFrames:
        """float32 (N,) 16 kHz mono in -1..1 (any N incl. 0) -> the frames now final."""
        pcm = np.nan_to_num(np.asarray(pcm16k, np.float32).reshape(-1))
        if len(pcm):
            self._pre = np.concatenate([self._pre, preemphasis(pcm, self._last)])
            self._last = float(pcm[-1])
            self._samples += len(pcm)
        avail = self._samples // SAMPLES_PER_FRAME * SAMPLES_PER_FRAME
        # mel frames whose whole segment has arrived
        last_j = (avail - HALF_FFT) // HOP
        if avail <= HALF_FFT:
            last_j = -1
        self._add_mel(last_j + 1, end=None)
        # raw weights whose whole window exists
        stop = self._raw_end
        while self._window_last(stop) < self._mel_end:
            stop += 1
        self._add_raw(stop, clamp=None)
        out = self._emit(self._raw_end - 1, pad_end=False)
        self._trim()
        return out

    def flush(self) -> LipFrames:
        """End of stream: the remaining frames exactly as the offline path ends a clip."""
        frames = self._samples // SAMPLES_PER_FRAME
        if frames <= self._next:
            self.reset()
            return LipFrames.empty()
        used = frames * SAMPLES_PER_FRAME  # offline drops the last partial frame
        n_mel = 1 + used // HOP
        self._add_mel(n_mel, end=used)
        self._add_raw(frames, clamp=n_mel - 1)
        out = self._emit(frames, pad_end=True)
        self.reset()
        return out

    # ---- stages -----------------------------------------------------------------------

    def _add_mel(self, stop: int, end: int | None) -> None:
        """Compute mel frames up to ``stop`` (exclusive); ``end``: reflect at this sample."""
        first = self._mel_end
        if stop <= first:
            return
        centres = HOP * np.arange(first, stop, dtype=np.int64)
        idx = centres[:, None] - HALF_FFT + np.arange(N_FFT, dtype=np.int64)[None, :]
        idx = np.abs(idx)  # reflect at the stream start (librosa's centred STFT)
        if end is not None:
            idx = np.where(idx >= end, 2 * (end - 1) - idx, idx)
        segments = self._pre[idx - self._pre_start]
        self._mel = np.concatenate([self._mel, mel_of_segments(segments)])

    def _window_last(self, frame: int) -> int:
        """Last mel frame in ``frame``'s window."""
        return int(window_starts(np.array([frame]))[0]) + WINDOW - 1

    def _add_raw(self, stop: int, clamp: int | None) -> None:
        """Raw weights for frames up to ``stop``; ``clamp``: last mel index (offline tail)."""
        first = self._raw_end
        if stop <= first:
            return
        starts = window_starts(np.arange(first, stop))
        idx = np.maximum(starts[:, None] + np.arange(WINDOW)[None, :], 0)
        if clamp is not None:
            idx = np.minimum(idx, clamp)
        windows = self._mel[idx - self._mel_start].transpose(0, 2, 1)[:, None]
        raw = self.runner.from_windows(np.ascontiguousarray(windows, np.float32))
        self._raw = np.concatenate([self._raw, np.asarray(raw, np.float32)])

    def _emit(self, stop: int, pad_end: bool) -> LipFrames:
        """Smoothed frames ``_next .. stop - 1`` (3-tap Gaussian, zeros outside the stream)."""
        if stop <= self._next:
            return LipFrames.empty()
        frames = np.arange(self._next, stop)
        prev = self._raw_rows(frames - 1)
        cur = self._raw_rows(frames)
        nxt = self._raw_rows(frames + 1) if not pad_end else self._raw_rows(frames + 1, stop)
        mouth = SMOOTH_TAPS[0] * prev + SMOOTH_TAPS[1] * cur + SMOOTH_TAPS[2] * nxt
        self._next = stop
        return LipFrames(frames.astype(np.int64), mouth.astype(np.float32))

    def _raw_rows(self, frames: np.ndarray, end: int | None = None) -> np.ndarray:
        """Raw weights of ``frames``; zeros before frame 0 and at or after ``end``."""
        rows = np.zeros((len(frames), MOUTH_DIM), np.float32)
        ok = (frames >= 0) if end is None else (frames >= 0) & (frames < end)
        rows[ok] = self._raw[frames[ok] - self._raw_start]
        return rows

    def _trim(self) -> None:
        """Drop what no future frame needs (memory stays bounded on an endless stream)."""
        keep_raw = max(self._next - 1, 0)
        if keep_raw > self._raw_start:
            self._raw = self._raw[keep_raw - self._raw_start :]
            self._raw_start = keep_raw
        keep_mel = max(int(window_starts(np.array([self._raw_end]))[0]), 0)
        keep_mel = min(keep_mel, self._mel_end)
        if keep_mel > self._mel_start:
            self._mel = self._mel[keep_mel - self._mel_start :]
            self._mel_start = keep_mel
        if self._mel_end < 2:
            return  # the first two mel frames reflect the stream start: keep it
        keep_pre = max(HOP * self._mel_end - HALF_FFT - KEEP_MARGIN, 0)
        if keep_pre > self._pre_start:
            self._pre = self._pre[keep_pre - self._pre_start :]
            self._pre_start = keep_pre
