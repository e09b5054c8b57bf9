"""Named motion coefficients: the interface between every stage of the pipeline.

Channels use Apple ARKit blendshape names (mouth and expression banks) plus a
rigid head pose. One coefficient vector ``c: float32 (K,)`` is ordered as
:data:`ALL_CHANNELS`; mouth and expression values lie in 0..1, pose angles are
degrees and translations are fractions of the head-frame size. The smile channels
also take negative values: they relax the portrait's own smile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

MOUTH_CHANNELS: tuple[str, ...] = (
    "jawOpen",
    "mouthClose",
    "mouthFunnel",
    "mouthPucker",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugLower",
    "mouthShrugUpper",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
)

EXPRESSION_CHANNELS: tuple[str, ...] = (
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "browInnerUp",
    "browDownLeft",
    "browDownRight",
    "browOuterUpLeft",
    "browOuterUpRight",
    "eyeBlinkLeft",
    "eyeBlinkRight",
    "eyeWideLeft",
    "eyeWideRight",
    "eyeSquintLeft",
    "eyeSquintRight",
    "cheekSquintLeft",
    "cheekSquintRight",
)

# Expression channels that may also be negative (down to -1): a negative smile relaxes
# the smile the portrait was photographed with (-1: its mouth corners at a neutral line).
SIGNED_CHANNELS: tuple[str, ...] = ("mouthSmileLeft", "mouthSmileRight")

# Degrees for the angles, fraction of the head-frame side for translations.
POSE_CHANNELS: tuple[str, ...] = ("headYaw", "headPitch", "headRoll", "headTx", "headTy")
POSE_ANGLE_LIMIT_DEG = 20.0
POSE_SHIFT_LIMIT = 0.05

ALL_CHANNELS: tuple[str, ...] = MOUTH_CHANNELS + EXPRESSION_CHANNELS + POSE_CHANNELS
NUM_CHANNELS = len(ALL_CHANNELS)
CHANNEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(ALL_CHANNELS)}
MOUTH_SLICE = slice(0, len(MOUTH_CHANNELS))
EXPRESSION_SLICE = slice(MOUTH_SLICE.stop, MOUTH_SLICE.stop + len(EXPRESSION_CHANNELS))
POSE_SLICE = slice(EXPRESSION_SLICE.stop, NUM_CHANNELS)
SIGNED_INDEX: tuple[int, ...] = tuple(CHANNEL_INDEX[name] for name in SIGNED_CHANNELS)

assert len(set(ALL_CHANNELS)) == NUM_CHANNELS, "channel names must be unique"


def zeros(batch: int | None = None) -> np.ndarray:
    """All-zero coefficients: float32 (K,) or (batch, K). Renders the aligned portrait."""
    shape = (NUM_CHANNELS,) if batch is None else (batch, NUM_CHANNELS)
    return np.zeros(shape, np.float32)


def from_mapping(values: Mapping[str, float], base: np.ndarray | None = None) -> np.ndarray:
    """Named values -> float32 (K,). Unknown names raise ``KeyError`` (no silent drops)."""
    out = zeros() if base is None else np.array(base, np.float32, copy=True)
    for name, value in values.items():
        if name not in CHANNEL_INDEX:
            raise KeyError(f"unknown channel {name!r}; known: {', '.join(ALL_CHANNELS)}")
        out[CHANNEL_INDEX[name]] = float(value)
    return out


def to_mapping(coeffs: np.ndarray, names: Sequence[str] = ALL_CHANNELS) -> dict[str, float]:
    """float32 (K,) -> {name: value}."""
    return {name: float(v) for name, v in zip(names, coeffs, strict=True)}


def pose_limit(name: str) -> float:
    """Largest magnitude of pose channel ``name``: degrees for angles, a fraction of the
    frame for shifts. KeyError for a name that is not a pose channel."""
    if name not in POSE_CHANNELS:
        raise KeyError(f"{name!r} is not a pose channel; known: {', '.join(POSE_CHANNELS)}")
    return POSE_ANGLE_LIMIT_DEG if POSE_CHANNELS.index(name) < 3 else POSE_SHIFT_LIMIT


def check_pose(values: Mapping[str, float]) -> None:
    """KeyError for an unknown pose channel, ValueError for a value past its limit."""
    for name, value in values.items():
        limit = pose_limit(name)
        if abs(value) > limit:
            raise ValueError(f"{name} must be within ±{limit:g}, got {value:g}")


def channel_bounds() -> tuple[np.ndarray, np.ndarray]:
    """(low, high) float32 (K,): each channel's valid range — 0..1 for blendshapes,
    -1..1 for :data:`SIGNED_CHANNELS`, the limits for pose. :func:`clip` and the ONNX
    renderer's graph both clamp to these."""
    lo = np.zeros(NUM_CHANNELS, np.float32)
    hi = np.ones(NUM_CHANNELS, np.float32)
    lo[list(SIGNED_INDEX)] = -1.0
    angles = slice(POSE_SLICE.start, POSE_SLICE.start + 3)
    shifts = slice(POSE_SLICE.start + 3, POSE_SLICE.stop)
    lo[angles], hi[angles] = -POSE_ANGLE_LIMIT_DEG, POSE_ANGLE_LIMIT_DEG
    lo[shifts], hi[shifts] = -POSE_SHIFT_LIMIT, POSE_SHIFT_LIMIT
    return lo, hi


def clip(coeffs: np.ndarray) -> np.ndarray:
    """Clamp to each channel's valid range (:func:`channel_bounds`)."""
    lo, hi = channel_bounds()
    return np.clip(np.asarray(coeffs, np.float32), lo, hi).astype(np.float32)
