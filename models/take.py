"""Speech -> one full coefficient vector per video frame: the motion half of the pipeline.

The same stages the live server runs per tick (``server/live/pipeline.py``), run over a whole
clip at once: audio-to-motion (:func:`models.motion.infer_file`: the streaming path in
blocks, so it equals a live stream of the same audio, plus the closure pass when the
model is one for files), the mouth channels put in
:data:`~models.channels.MOUTH_CHANNELS` order, then :class:`~models.mixer.MotionMixer`
one frame at a time. As live, a frame without speech input gets ``mouth=None`` so the
mouth relaxes closed; offline "no input" is audio quieter than :data:`SILENCE_DBFS`
around the frame (digital silence, as a live underrun plays).

Plain synchronous code: callers run it on worker threads or processes.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from headcast.models.audio import SAMPLE_RATE
from headcast.models.channels import ALL_CHANNELS, POSE_SLICE
from headcast.models.emotions import load_presets
from headcast.models.mixer import EMOTION_TRANSITION_S, MotionMixer
from headcast.models.motion import MotionModel, infer_file

#: a frame whose surrounding audio is quieter than this (RMS, dB full scale) is silence:
#: below any recorded room or microphone (16-bit dither sits near -96), so a quiet
#: recording still speaks as it would live, and the speech gate judges the rest
SILENCE_DBFS = -80.0
#: audio looked at around a frame's time to decide speech vs silence (seconds before, after)
GATE_WINDOW_S = (0.02, 0.04)

Pose = Literal["natural", "still"]
POSES: tuple[str, ...] = ("natural", "still")


@dataclass(frozen=True)
class EmotionCue:
    """At ``time_s`` seconds, cross-fade to preset ``emotion`` over ``transition_s`` seconds."""

    time_s: float
    emotion: str
    transition_s: float = EMOTION_TRANSITION_S


@dataclass(frozen=True)
class Take:
    """The motion of one clip.

    ``coeffs``: float32 (N, K) over :data:`ALL_CHANNELS`; frame ``i`` is at ``i / fps`` s.
    ``speech``: float32 (N,) 0..1 speech probability from the motion model.
    ``voiced``: bool (N,) False where the audio is silence and the mouth is released.
    """

    fps: int
    coeffs: np.ndarray
    speech: np.ndarray
    voiced: np.ndarray
    seed: int

    def __len__(self) -> int:
        return len(self.coeffs)

    def to_json(self, decimals: int = 4) -> dict[str, Any]:
        """``{"fps", "seed", "names": ALL_CHANNELS, "frames": [[K floats], ...]}``."""
        return {
            "fps": self.fps,
            "seed": self.seed,
            "names": list(ALL_CHANNELS),
            "frames": np.round(self.coeffs.astype(np.float64), decimals).tolist(),
        }


def audio_seed(pcm16k: np.ndarray) -> int:
    """A seed derived from the samples (CRC-32): reproducible, and different per clip."""
    return zlib.crc32(np.ascontiguousarray(pcm16k, np.float32).tobytes())


def voiced_frames(pcm16k: np.ndarray, n_frames: int, fps: int) -> np.ndarray:
    """bool (n_frames,): RMS of ``pcm16k`` float32 (N,) around each frame above SILENCE_DBFS."""
    pcm = np.asarray(pcm16k, np.float32).reshape(-1)
    csum = np.concatenate([[0.0], np.cumsum(pcm.astype(np.float64) ** 2)])
    t = np.arange(n_frames) * SAMPLE_RATE / fps
    lo = np.clip(np.round(t - GATE_WINDOW_S[0] * SAMPLE_RATE), 0, len(pcm)).astype(np.int64)
    hi = np.clip(np.round(t + GATE_WINDOW_S[1] * SAMPLE_RATE), 0, len(pcm)).astype(np.int64)
    energy = (csum[hi] - csum[lo]) / np.maximum(hi - lo, 1)
    threshold = 10.0 ** (SILENCE_DBFS / 10.0)  # power
    return np.asarray(energy > threshold)


def check_emotions(emotion: str, cues: Sequence[EmotionCue] = ()) -> None:
    """``KeyError`` naming the known presets if any emotion is unknown."""
    presets = load_presets()
    for name in [emotion, *(c.emotion for c in cues)]:
        if name not in presets:
            raise KeyError(f"unknown emotion {name!r}; known: {', '.join(sorted(presets))}")


def load_cues(path: str | Path) -> tuple[EmotionCue, ...]:
    """Read an emotion timeline file (see :func:`parse_cues`); ``ValueError`` with the
    reason for a bad file."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{p}: not a readable JSON emotion timeline ({exc})") from exc
    return parse_cues(raw, str(p))


def cues_from_json(text: str) -> tuple[EmotionCue, ...]:
    """An emotion timeline given inline as JSON text (see :func:`parse_cues`)."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not a JSON emotion timeline ({exc})") from exc
    return parse_cues(raw, "emotion timeline")


def parse_cues(raw: object, where: str) -> tuple[EmotionCue, ...]:
    """Decoded JSON ``[{"time": s, "emotion": name, "transition": s}, ...]`` (or
    ``{"cues": [...]}``) -> cues sorted by time; ``transition`` is optional.
    ``ValueError`` naming ``where`` and the cue for anything else."""
    if isinstance(raw, dict):
        raw = raw.get("cues")
    if not isinstance(raw, list):
        raise ValueError(f"{where}: expected a list of {{time, emotion}} cues")
    cues = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) - {"time", "emotion", "transition"}:
            raise ValueError(
                f"{where}: cue {i} must have keys time, emotion and optional transition"
            )
        missing = [k for k in ("time", "emotion") if k not in item]
        if missing:
            raise ValueError(f"{where}: cue {i} has no {' and no '.join(missing)}")
        try:
            cue = EmotionCue(
                float(item["time"]),
                str(item["emotion"]),
                float(item.get("transition", EMOTION_TRANSITION_S)),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: cue {i}: {exc}") from exc
        if not (math.isfinite(cue.time_s) and cue.time_s >= 0 and cue.transition_s >= 0):
            raise ValueError(f"{where}: cue {i}: time and transition must be >= 0")
        cues.append(cue)
    out = tuple(sorted(cues, key=lambda c: c.time_s))
    check_emotions("neutral", out)
    return out


def mix_take(
    mouth: np.ndarray,
    speech: np.ndarray,
    voiced: np.ndarray,
    *,
    fps: int,
    seed: int,
    emotion: str = "neutral",
    cues: Sequence[EmotionCue] = (),
    pose: Pose = "natural",
    portrait_smile: Mapping[str, float] | None = None,
    lips_apart: bool = False,
) -> np.ndarray:
    """Mouth float32 (N, 16) over MOUTH_CHANNELS, speech float32 (N,), voiced bool (N,)
    -> float32 (N, K) over ALL_CHANNELS, stepping one :class:`MotionMixer` per frame.

    ``pose="still"`` zeroes the head pose (blinks and expression stay).
    ``portrait_smile``: the avatar pack's ``smile``, ``lips_apart`` whether its lips are
    apart at rest (see :class:`MotionMixer`).
    """
    if pose not in POSES:
        raise ValueError(f"pose must be one of {POSES}, got {pose!r}")
    mixer = MotionMixer(
        float(fps),
        seed=seed,
        emotion=emotion,
        portrait_smile=portrait_smile,
        lips_apart=lips_apart,
    )
    starts = sorted((round(c.time_s * fps), i) for i, c in enumerate(cues))
    out = np.zeros((len(mouth), len(ALL_CHANNELS)), np.float32)
    k = 0
    for f in range(len(mouth)):
        while k < len(starts) and starts[k][0] <= f:
            cue = cues[starts[k][1]]
            mixer.set_emotion(cue.emotion, cue.transition_s)
            k += 1
        if voiced[f]:
            out[f] = mixer.step(mouth[f], float(speech[f]))
        else:
            out[f] = mixer.step(None, 0.0)
    if pose == "still":
        out[:, POSE_SLICE] = 0.0
    return out


def speech_to_take(
    model: MotionModel,
    pcm16k: np.ndarray,
    *,
    seed: int | None = None,
    emotion: str = "neutral",
    cues: Sequence[EmotionCue] = (),
    pose: Pose = "natural",
    portrait_smile: Mapping[str, float] | None = None,
    lips_apart: bool = False,
) -> Take:
    """float32 (N,) 16 kHz mono speech -> the clip's :class:`Take` at ``model.fps``.

    ``ceil(N * fps / 16000)`` frames, so the video lasts as long as the audio to within a
    frame. ``seed=None`` derives the seed from the audio (:func:`audio_seed`).
    ``portrait_smile``: the avatar pack's ``smile``, so ``neutral`` relaxes it;
    ``lips_apart``: its lips are apart at rest, so they come together in pauses.
    """
    pcm = np.asarray(pcm16k, np.float32).reshape(-1)
    check_emotions(emotion, cues)
    motion = infer_file(model, pcm)
    n = len(motion)
    mouth = motion.coeffs  # (n, 16), MOUTH_CHANNELS order
    voiced = voiced_frames(pcm, n, model.fps)
    used_seed = audio_seed(pcm) if seed is None else int(seed)
    coeffs = mix_take(
        mouth,
        motion.speech,
        voiced,
        fps=model.fps,
        seed=used_seed,
        emotion=emotion,
        cues=cues,
        pose=pose,
        portrait_smile=portrait_smile,
        lips_apart=lips_apart,
    )
    return Take(model.fps, coeffs, motion.speech.astype(np.float32), voiced, used_seed)
