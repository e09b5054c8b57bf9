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


def write_wav(path: str | Path, pcm16k: np.ndarray) -> Path:
    """float32 (N,) 16 kHz mono -1..1 -> a 16-bit WAV file at ``path``."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((np.clip(pcm16k, -1.0, 1.0) * 32767).astype("<i2").tobytes())
    return Path(path)


__all__ = ["SAMPLE_RATE", "SUPPORTED_FPS", "AudioError", "AudioTooLong", "write_wav"]
