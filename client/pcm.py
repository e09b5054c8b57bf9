"""PCM helpers for the WebSocket audio input: sample encoding and chunk durations."""

from __future__ import annotations

import numpy as np


def encode_pcm(pcm: np.ndarray | bytes, fmt: str) -> bytes:
    """float (-1..1) or int16 samples -> bytes in ``fmt`` ("s16le" or "f32le").

    Bytes pass through unchanged (they are taken to be in ``fmt`` already).
    """
    if isinstance(pcm, bytes | bytearray):
        return bytes(pcm)
    x = np.asarray(pcm)
    if fmt == "f32le":
        if x.dtype.kind in "iu":
            x = x.astype(np.float32) / 32768.0
        return x.astype("<f4").tobytes()
    if x.dtype.kind == "f":
        x = np.clip(np.rint(x * 32767.0), -32768, 32767)
    return x.astype("<i2").tobytes()


def bytes_per_sample(fmt: str) -> int:
    """Bytes of one sample of one channel in ``fmt`` (s16le or f32le)."""
    return 2 if fmt == "s16le" else 4


def pcm_seconds(nbytes: int, fmt: str, channels: int, sample_rate: int) -> float:
    """How long ``nbytes`` of interleaved PCM in ``fmt`` lasts."""
    return nbytes / bytes_per_sample(fmt) / channels / sample_rate
