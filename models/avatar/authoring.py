"""Channel displacements, authored once in a canonical face space.

Each mouth and expression channel is a function from the avatar's aligned
landmarks to a displacement of every landmark at full activation:
``float32 (478, 3) -> float32 (478, 2)`` in head-frame pixels. Amounts are
written in face units (mouth width, face height, eye opening, brow-to-eye
distance) measured on the avatar itself, so one definition transfers to any
face; the dense flow is then interpolated from the landmarks (``bases.py``).
Directions follow the ARKit blendshape reference (left/right are the subject's).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from headcast.models.avatar import expression_motion as E
from headcast.models.avatar import landmarks as L
from headcast.models.avatar import mouth_motion as M
from headcast.models.avatar.face_geometry import FaceGeometry
from headcast.models.channels import EXPRESSION_CHANNELS, MOUTH_CHANNELS

Author = Callable[[FaceGeometry], np.ndarray]


def _both(f: Callable[[FaceGeometry, bool], np.ndarray]) -> Callable[[FaceGeometry], np.ndarray]:
    return lambda g: f(g, True) + f(g, False)


def _sided(f: Callable[[FaceGeometry, bool], np.ndarray], left: bool) -> Author:
    return lambda g: f(g, left)


AUTHORS: dict[str, Author] = {
    "jawOpen": M.jaw_open,
    "mouthClose": M.mouth_close,
    "mouthFunnel": M.mouth_funnel,
    "mouthPucker": M.mouth_pucker,
    "mouthStretchLeft": _sided(M.stretch, True),
    "mouthStretchRight": _sided(M.stretch, False),
    "mouthRollLower": lambda g: M.roll(g, True),
    "mouthRollUpper": lambda g: M.roll(g, False),
    "mouthShrugLower": lambda g: M.shrug(g, True),
    "mouthShrugUpper": lambda g: M.shrug(g, False),
    "mouthPressLeft": _sided(M.press, True),
    "mouthPressRight": _sided(M.press, False),
    "mouthLowerDownLeft": _sided(M.lower_down, True),
    "mouthLowerDownRight": _sided(M.lower_down, False),
    "mouthUpperUpLeft": _sided(M.upper_up, True),
    "mouthUpperUpRight": _sided(M.upper_up, False),
    "mouthSmileLeft": _sided(E.smile, True),
    "mouthSmileRight": _sided(E.smile, False),
    "mouthFrownLeft": _sided(E.frown, True),
    "mouthFrownRight": _sided(E.frown, False),
    "browInnerUp": _both(lambda g, left: E.brow_field(g, left, 0.5, 0.1)),
    "browDownLeft": lambda g: E.brow_field(g, True, 0.42, 0.25, inward=0.2) * np.array([1.0, -1.0]),
    "browDownRight": lambda g: E.brow_field(g, False, 0.42, 0.25, inward=0.2)
    * np.array([1.0, -1.0]),
    "browOuterUpLeft": lambda g: E.brow_field(g, True, 0.08, 0.5),
    "browOuterUpRight": lambda g: E.brow_field(g, False, 0.08, 0.5),
    "eyeBlinkLeft": _sided(E.blink, True),
    "eyeBlinkRight": _sided(E.blink, False),
    "eyeWideLeft": _sided(E.wide, True),
    "eyeWideRight": _sided(E.wide, False),
    "eyeSquintLeft": _sided(E.squint, True),
    "eyeSquintRight": _sided(E.squint, False),
    "cheekSquintLeft": _sided(E.cheek_squint, True),
    "cheekSquintRight": _sided(E.cheek_squint, False),
}

assert (
    tuple(AUTHORS) == MOUTH_CHANNELS + EXPRESSION_CHANNELS
), "authoring must cover every channel in order"


def _below(g: FaceGeometry, y0: float, y1: float) -> np.ndarray:
    """0 above ``y0``, 1 below ``y1``, smooth between (per landmark)."""
    t = np.clip((g.xy[:, 1] - y0) / max(y1 - y0, 1e-6), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _support(g: FaceGeometry, name: str) -> np.ndarray:
    """Where a channel may move skin at all: the mouth bank stays below the nose tip and
    the eye-area expression channels above it, so the banks barely overlap to begin with
    and projecting one off the other leaves the eyes' channels untouched."""
    nose = float(g.xy[L.NOSE_TIP, 1])
    lower = _below(g, nose - 0.02 * g.face_height, nose + 0.03 * g.face_height)
    if name in MOUTH_CHANNELS or name.startswith(("mouthSmile", "mouthFrown")):
        return lower
    return 1.0 - lower


def landmark_displacements(points: np.ndarray) -> np.ndarray:
    """float32 (478, 3) aligned landmarks -> float32 (C, 478, 2) per-channel displacements."""
    g = FaceGeometry.of(points)
    return np.stack([AUTHORS[name](g) * _support(g, name)[:, None] for name in AUTHORS]).astype(
        np.float32
    )
