"""The speech an offline render starts from: decoded samples and EDTalk's mouth weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from headcast.models.audio import SAMPLE_RATE, AudioError
from headcast.models.audio.decode import load_audio
from headcast.models.offline.options import RenderError


def decode_speech(speech: Path, max_seconds: float | None = None) -> np.ndarray:
    """float32 (N,) 16 kHz mono of ``speech``; RenderError if unusable, empty or longer
    than ``max_seconds``."""
    try:
        pcm, _ = load_audio(speech, max_seconds=max_seconds)
    except AudioError as exc:
        raise RenderError(str(exc)) from exc
    if len(pcm) == 0:
        raise RenderError(f"{speech}: the audio is empty (zero samples)")
    return pcm


def edtalk_mouth(runner: Any, pcm16k: np.ndarray, frames: int, fps: int) -> np.ndarray:
    """EDTalk's mouth weights float32 (frames, 20) for speech float32 (N,) 16 kHz.

    The audio is padded with silence to whole frames, as a live session plays an
    underrun, so the last partial frame gets a mouth too.
    """
    if fps != runner.fps:
        raise RenderError(f"the edtalk backend renders at {runner.fps} fps, got --fps {fps}")
    spf = SAMPLE_RATE // fps
    pcm = np.asarray(pcm16k, np.float32).reshape(-1)[: frames * spf]
    padded = np.pad(pcm, (0, frames * spf - len(pcm)))
    mouth = np.asarray(runner.from_wav(padded), np.float32)
    assert mouth.shape[0] == frames, (mouth.shape, frames)
    return mouth
