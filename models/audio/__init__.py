"""Audio front-end: any input -> 16 kHz mono float32 -> level-normalised 80-bin log-mel."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

#: Hz: the one rate of speech inside headcast (features, motion, the live session clock,
#: offline decoding); every input is resampled to it
SAMPLE_RATE = 16_000
#: video frame rates of motion whose frame times the 100 Hz mel grid resolves
SUPPORTED_FPS = (20, 25, 30, 50, 60)


class AudioError(ValueError):
    """Input that is not usable audio; the message says why in one readable line."""


class AudioTooLong(AudioError):
    """The decoded audio passes the length the caller allows."""


def finite_pcm(x: np.ndarray) -> np.ndarray:
    """float samples -> float32 in -1..1: NaN and infinity (no sample at all: a broken
    float file) become silence, overs are clipped to full scale."""
    x = np.asarray(x, np.float32)
    if not np.isfinite(x).all():  # the common case skips the copies
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(x, -1.0, 1.0)


def write_wav(path: str | Path, pcm16k: np.ndarray) -> Path:
    """float32 (N,) 16 kHz mono -1..1 -> a 16-bit WAV file at ``path``."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((np.clip(pcm16k, -1.0, 1.0) * 32767).astype("<i2").tobytes())
    return Path(path)


__all__ = [
    "SAMPLE_RATE", "SUPPORTED_FPS", "AudioError", "AudioTooLong", "finite_pcm", "write_wav",
]  # fmt: skip
