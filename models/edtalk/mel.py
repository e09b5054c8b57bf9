"""Wav2Lip-style mel windows, the input EDTalk's Audio2Lip was trained on (numpy only).

Upstream computes them with librosa (``hparams.py``/``audio.py``): pre-emphasis 0.97,
STFT n_fft = win = 800 (50 ms), hop 200 (12.5 ms, 80 mel frames/s), centred with
reflect padding, 80 Slaney mel bins over 55..7600 Hz, ``20 log10(max(1e-5, |X|)) - 20``
dB, then mapped from [-100, 0] dB onto [-4, 4] and clipped. Frame ``i`` of 25 fps video
sees the 16 mel frames starting at ``int(80 * (i - 2) / 25)`` — 80 ms before the video
frame to 120 ms after it. The formulas are re-derived here so the server needs
neither librosa nor torch.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from headcast.models.audio import SAMPLE_RATE

FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640
N_FFT = 800
HOP = 200  # 12.5 ms
MEL_FPS = SAMPLE_RATE // HOP  # 80 mel frames per second
N_MELS = 80
FMIN, FMAX = 55.0, 7600.0
PREEMPHASIS = 0.97
MIN_LEVEL_DB = -100.0
REF_LEVEL_DB = 20.0
MAX_ABS = 4.0
WINDOW = 16  # mel frames per video frame (0.2 s)
WINDOW_OFFSET = -2  # video frames: the window starts two frames before the current one
# How far past the start of video frame i the window reaches: 16 hops - 2 frames = 120 ms.
LOOKAHEAD_MS = WINDOW * 1000 // MEL_FPS + WINDOW_OFFSET * 1000 // FPS
assert LOOKAHEAD_MS == 120


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz (3 mel per 200 Hz), logarithmic above."""
    hz = np.asarray(hz, np.float64)
    mel = hz / (200.0 / 3)
    log_step = np.log(6.4) / 27.0
    return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / log_step, mel)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(mel >= 15.0, 1000.0 * np.exp(log_step * (mel - 15.0)), mel * (200.0 / 3))


def mel_filters() -> np.ndarray:
    """float64 (80, 401) triangular filters, Slaney-normalised (equal area), as librosa's."""
    fft_hz = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(
        np.linspace(_hz_to_mel(np.array(FMIN)), _hz_to_mel(np.array(FMAX)), N_MELS + 2)
    )
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


_FILTERS = mel_filters()
# periodic Hann, as scipy.signal.get_window("hann", N_FFT) which librosa uses
_WINDOW = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)


def preemphasis(wav: np.ndarray, previous: float = 0.0) -> np.ndarray:
    """float (N,) -> float64 (N,) ``x[n] - 0.97 x[n - 1]``; ``previous`` is ``x[-1]`` (streaming)."""
    x = np.asarray(wav, np.float64)
    out, _ = lfilter([1.0, -PREEMPHASIS], [1.0], x, zi=np.array([-PREEMPHASIS * previous]))
    return np.asarray(out, np.float64)


def mel_of_segments(segments: np.ndarray) -> np.ndarray:
    """float64 (T, 800) pre-emphasised STFT segments -> float32 (T, 80) in [-4, 4]."""
    spec = np.abs(np.fft.rfft(segments * _WINDOW, axis=1))  # (T, 401)
    mel = spec @ _FILTERS.T
    db = 20.0 * np.log10(np.maximum(1e-5, mel)) - REF_LEVEL_DB
    norm = 2 * MAX_ABS * (db - MIN_LEVEL_DB) / -MIN_LEVEL_DB - MAX_ABS
    return np.clip(norm, -MAX_ABS, MAX_ABS).astype(np.float32)


def melspectrogram(wav: np.ndarray) -> np.ndarray:
    """wav float32 (N,) mono 16 kHz in [-1, 1] -> float32 (1 + N // 200, 80) in [-4, 4]."""
    x = preemphasis(wav)
    pad = N_FFT // 2
    x = np.pad(x, pad, mode="reflect") if len(x) > pad else np.pad(x, pad)
    n_frames = 1 + (len(x) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    return mel_of_segments(x[idx])


def num_video_frames(num_samples: int) -> int:
    """Whole 25 fps frames in ``num_samples`` of 16 kHz audio (upstream drops the remainder)."""
    return num_samples // SAMPLES_PER_FRAME


def window_starts(frames: np.ndarray) -> np.ndarray:
    """Video frames int (N,) -> the first mel frame of each one's window, int64 (N,).

    May be negative for the first two frames (clamped to 0 by the callers).
    """
    # int() truncates toward zero; upstream relies on that for the first two frames
    frames = np.asarray(frames, np.int64)
    return np.trunc(MEL_FPS * (frames + WINDOW_OFFSET) / FPS).astype(np.int64)


def mel_windows(mel: np.ndarray, num_frames: int, first_frame: int = 0) -> np.ndarray:
    """mel (T, 80) -> float32 (num_frames, 1, 80, 16), one window per video frame.

    Indices outside the spectrogram are clamped to its ends, as upstream does.
    ``first_frame`` offsets the video-frame counter for streaming use.
    """
    starts = window_starts(np.arange(first_frame, first_frame + num_frames))
    idx = np.clip(starts[:, None] + np.arange(WINDOW)[None, :], 0, len(mel) - 1)
    return np.ascontiguousarray(mel[idx].transpose(0, 2, 1)[:, None], dtype=np.float32)


# Temporal smoothing upstream applies to the predicted mouth weights: a 3-tap
# Gaussian (sigma = 1 frame), zero-padded at the ends.
SMOOTH_TAPS = np.exp(-(np.arange(-1, 2) ** 2) / 2.0)
SMOOTH_TAPS = (SMOOTH_TAPS / SMOOTH_TAPS.sum()).astype(np.float32)


def smooth(mouth: np.ndarray) -> np.ndarray:
    """float32 (T, 20) -> (T, 20), 3-tap Gaussian over time with zero padding (as upstream)."""
    padded = np.pad(np.asarray(mouth, np.float32), ((1, 1), (0, 0)))
    return (
        SMOOTH_TAPS[0] * padded[:-2] + SMOOTH_TAPS[1] * padded[1:-1] + SMOOTH_TAPS[2] * padded[2:]
    )
