"""The mouth bank at full activation, in face units (ARKit mouth blendshapes).

Each function maps a :class:`FaceGeometry` to ``float (478, 2)`` landmark
displacements in head-frame pixels.
"""

from __future__ import annotations

import numpy as np

from headcast.models.avatar import landmarks as L
from headcast.models.avatar.face_geometry import (
    FaceGeometry,
    compress_lip,
    half_gap,
    lip_band,
    lower_side,
    mouth_region,
    side_weight,
)

# Lower-lip (and chin) drop at jawOpen = 1: half in mouth widths, half in face heights,
# so a mouth that looks narrow (a small mouth, a head turned aside) still opens as far
# as the face is tall (about 13 % of the face height on a frontal face).
JAW_DROP_MOUTH = 0.18  # mouth widths
JAW_DROP_FACE = 0.065  # face heights
CORNER_TAPER = 0.6  # the lower lip's drop at the mouth corners is this much less than at its middle
CORNER_REACH = 1.5  # lower-lip thicknesses below the slit over which that taper fades out
SEAL_FADE_PER_PX = 2.5  # skin over which a sealed lip's motion fades, per px it travels


def jaw_open(g: FaceGeometry) -> np.ndarray:
    # Seen from the front, the mandible's points drop by about the same amount
    # (they are all far in front of the hinge), fading towards the jaw angles
    # near the ears; only the lower-jaw side of the lip slit moves.
    d = np.zeros_like(g.xy)
    half_face = 0.5 * g.face_height * 0.85
    across = np.clip(1.0 - ((g.xy[:, 0] - g.mouth_center[0]) / half_face) ** 2, 0.0, 1.0)
    below = np.clip((g.xy[:, 1] - g.hinge_y) / (g.mouth_center[1] - g.hinge_y), 0.0, 1.0)
    w = across * below * lower_side(g)
    # The lip corners are tethered (the modiolus): near the slit the lower lip drops
    # less towards the corners, so the opening is a lens, not a trapezoid. The chin,
    # further down, drops fully.
    u = np.clip(np.abs(g.xy[:, 0] - g.mouth_center[0]) / (0.5 * g.mouth_width), 0.0, 1.0)
    below_slit = np.maximum(lip_band(g, True), 0.0)
    near_slit = np.exp(-0.5 * (below_slit / (CORNER_REACH * g.lower_lip_thickness)) ** 2)
    w = w * (1.0 - CORNER_TAPER * u**2 * near_slit)
    d[:, 1] = (JAW_DROP_MOUTH * g.mouth_width + JAW_DROP_FACE * g.face_height) * w
    # The mouth narrows a little as it opens.
    d[:, 0] = (
        -0.05
        * g.mouth_width
        * np.tanh((g.xy[:, 0] - g.mouth_center[0]) / (0.5 * g.mouth_width))
        * w
    )
    return d


def mouth_close(g: FaceGeometry) -> np.ndarray:
    # ARKit mouthClose: lips meet while the jaw stays open, so it undoes jawOpen
    # on the lower lip, fading out below it (the renderer caps it at jawOpen). The lip
    # is measured from its own inner edge: on a mouth photographed open that edge lies
    # well below the slit, and the whole lip must come back up.
    dist = np.maximum(lip_band(g, True) - half_gap(g, g.xy[:, 0]), 0.0)
    thick = g.lower_lip_thickness
    beyond = np.clip((dist - thick) / (2.0 * thick), 0.0, 1.0)
    w = 1.0 - beyond * beyond * (3 - 2 * beyond)
    return -jaw_open(g) * w[:, None]


def mouth_funnel(g: FaceGeometry) -> np.ndarray:
    d = np.zeros_like(g.xy)
    rel = g.xy - g.mouth_center
    region = mouth_region(g, 0.36)
    d[:, 0] = -0.22 * rel[:, 0] * region
    d[:, 1] = 0.12 * g.mouth_width * np.tanh(rel[:, 1] / (0.1 * g.mouth_width)) * region
    return d


def mouth_pucker(g: FaceGeometry) -> np.ndarray:
    d = np.zeros_like(g.xy)
    rel = g.xy - g.mouth_center
    region = mouth_region(g, 0.5)
    d[:, 0] = -0.38 * rel[:, 0] * region
    d[:, 1] = -0.08 * rel[:, 1] * region
    return d


def stretch(g: FaceGeometry, left: bool) -> np.ndarray:
    d = np.zeros_like(g.xy)
    w = side_weight(g, left) * mouth_region(g, 0.6)
    d[:, 0] = (0.14 if left else -0.14) * g.mouth_width * w
    d[:, 1] = 0.05 * g.mouth_width * w
    return d


def roll(g: FaceGeometry, lower: bool) -> np.ndarray:
    return compress_lip(g, lower, 0.55, np.ones(len(g.xy)))


def shrug(g: FaceGeometry, lower: bool) -> np.ndarray:
    d = np.zeros_like(g.xy)
    region = mouth_region(g, 0.6)
    if lower:
        # Chin raiser pushes the lower lip up; the upper lip rides on it.
        side = lower_side(g)
        d[:, 1] = -0.09 * g.mouth_width * region * (0.6 + 0.4 * side)
    else:
        d[:, 1] = -0.08 * g.mouth_width * region * (1.0 - 0.2 * lower_side(g))
    return d


def press(g: FaceGeometry, left: bool) -> np.ndarray:
    w = 0.4 + 0.6 * side_weight(g, left)
    return compress_lip(g, False, 0.35, w) + compress_lip(g, True, 0.35, w)


def lower_down(g: FaceGeometry, left: bool) -> np.ndarray:
    d = np.zeros_like(g.xy)
    w = (0.3 + 0.7 * side_weight(g, left)) * mouth_region(g, 0.5)
    lower = lower_side(g) * w
    d[:, 1] = 0.2 * g.mouth_width * lower
    return d


def upper_up(g: FaceGeometry, left: bool) -> np.ndarray:
    d = np.zeros_like(g.xy)
    w = (0.3 + 0.7 * side_weight(g, left)) * mouth_region(g, 0.55)
    upper = (1.0 - lower_side(g)) * w
    d[:, 1] = -0.14 * g.mouth_width * upper
    return d


def _inner_lip_y(g: FaceGeometry, ids: tuple[int, ...], x: np.ndarray) -> np.ndarray:
    pts = g.xy[list(ids)]
    order = np.argsort(pts[:, 0])
    return np.interp(x, pts[order, 0], pts[order, 1])


def _fade_beyond(dist: np.ndarray, thick: float, move: np.ndarray) -> np.ndarray:
    """1 up to one lip thickness past the lip edge, then smoothly 0 over 1.5 more, or over
    SEAL_FADE_PER_PX times the lip's travel ``move`` where that is longer (a lip moved far
    is carried by a long stretch of skin, not by stretching the lip itself)."""
    span = np.maximum(1.5 * max(thick, 1e-6), SEAL_FADE_PER_PX * move)
    t = np.clip((dist - thick) / span, 0.0, 1.0)
    return 1.0 - t * t * (3 - 2 * t)


def lip_seal(g: FaceGeometry) -> np.ndarray:
    """Bring the inner lips together over the portrait's own rest opening (teeth of a
    smile, an open mouth): each lip moves half the local gap to the slit, carrying the
    lip and fading out past it. Zero on a closed mouth. Not a channel: the renderer
    weights it by the closure that mouthClose and mouthPress ask for."""
    x, y = g.xy[:, 0], g.xy[:, 1]
    y_up = _inner_lip_y(g, L.LIPS_INNER_UPPER, x)
    y_lo = _inner_lip_y(g, L.LIPS_INNER_LOWER, x)
    half = 0.5 * np.maximum(y_lo - y_up, 0.0)
    lower = lower_side(g)
    fade_lo = _fade_beyond(y - y_lo, g.lower_lip_thickness, half)
    fade_up = _fade_beyond(y_up - y, g.upper_lip_thickness, half)
    d = np.zeros_like(g.xy)
    d[:, 1] = half * ((1.0 - lower) * fade_up - lower * fade_lo)
    return d
