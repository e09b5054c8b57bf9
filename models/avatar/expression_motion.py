"""The expression bank at full activation: smile/frown, brows, lids, cheeks (ARKit names).

Each function maps a :class:`FaceGeometry` to ``float (478, 2)`` landmark
displacements in head-frame pixels; ``left`` is the subject's left.
"""

from __future__ import annotations

import numpy as np

from headcast.models.avatar import landmarks as L
from headcast.models.avatar.face_geometry import FaceGeometry, eye, gauss, lid_gap

BLINK_CLOSE = 0.92  # share of the lid gap closed at eyeBlink = 1 (no degenerate triangles)


def smile(g: FaceGeometry, left: bool) -> np.ndarray:
    d = np.zeros_like(g.xy)
    corner = g.xy[L.MOUTH_CORNER_L if left else L.MOUTH_CORNER_R]
    w = gauss(g.xy, corner, 0.42 * g.mouth_width)
    d[:, 0] = (0.14 if left else -0.14) * g.mouth_width * w
    d[:, 1] = -0.18 * g.mouth_width * w
    cheek = gauss(g.xy, corner + np.array([0.0, -0.12 * g.face_height]), 0.3 * g.mouth_width)
    d[:, 1] += -0.05 * g.mouth_width * cheek
    return d


def frown(g: FaceGeometry, left: bool) -> np.ndarray:
    d = np.zeros_like(g.xy)
    corner = g.xy[L.MOUTH_CORNER_L if left else L.MOUTH_CORNER_R]
    w = gauss(g.xy, corner, 0.3 * g.mouth_width)
    w = w * (g.xy[:, 1] > g.mouth_center[1] - 0.25 * g.mouth_width)  # the cheek above stays
    d[:, 0] = (0.03 if left else -0.03) * g.mouth_width * w
    d[:, 1] = 0.13 * g.mouth_width * w
    return d


def brow_points(left: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if left:
        return np.array(L.BROW_L), np.array(L.BROW_L_INNER), np.array(L.BROW_L_OUTER)
    return np.array(L.BROW_R), np.array(L.BROW_R_INNER), np.array(L.BROW_R_OUTER)


def brow_field(
    g: FaceGeometry, left: bool, inner_amt: float, outer_amt: float, inward: float = 0.0
) -> np.ndarray:
    """Move one brow: a vertical lift blended from inner to outer end, spread to nearby skin."""
    d = np.zeros_like(g.xy)
    brow, inner, outer = brow_points(left)
    gap = g.brow_l_gap if left else g.brow_r_gap
    xi, xo = g.xy[inner, 0].mean(), g.xy[outer, 0].mean()
    t = np.clip((g.xy[:, 0] - xi) / (xo - xi), 0.0, 1.0)
    amount = (inner_amt * (1 - t) + outer_amt * t) * gap
    center = g.xy[brow].mean(0)
    w = gauss(g.xy, center, 0.55 * abs(xo - xi))
    w[brow] = 1.0
    # Eyes and lids stay put: only the brow and the skin above the lid crease move.
    eye_upper, eye_lower, crease, _, _ = eye(g, left)
    w[eye_upper] *= 0.15
    w[eye_lower] = 0.0
    w[np.array(L.IRIS_L + L.IRIS_R)] = 0.0
    w[crease] *= 0.5
    d[:, 1] = -amount * w
    d[:, 0] = inward * gap * (1 - t) * w * (-1.0 if left else 1.0)
    return d


def blink(g: FaceGeometry, left: bool) -> np.ndarray:
    # Everything between the lids is squeezed towards the lower lid by one factor,
    # so the iris stays below the closing lid; the lid crease follows part-way.
    d = np.zeros_like(g.xy)
    upper, lower, crease, _, _ = eye(g, left)
    iris = np.array(L.IRIS_L if left else L.IRIS_R)
    closing = np.concatenate([upper, iris])
    d[closing, 1] = BLINK_CLOSE * lid_gap(g, closing, lower)
    d[crease, 1] = 0.35 * lid_gap(g, crease, lower)
    return d


def wide(g: FaceGeometry, left: bool) -> np.ndarray:
    d = np.zeros_like(g.xy)
    upper, _, crease, _, opening = eye(g, left)
    d[upper, 1] = -0.3 * opening
    d[crease, 1] = -0.22 * opening
    return d


def squint(g: FaceGeometry, left: bool) -> np.ndarray:
    d = np.zeros_like(g.xy)
    upper, lower, _, lower_ring, opening = eye(g, left)
    d[lower, 1] = -0.28 * opening
    d[lower_ring, 1] = -0.18 * opening
    d[upper, 1] = 0.1 * opening
    return d


def cheek_squint(g: FaceGeometry, left: bool) -> np.ndarray:
    d = np.zeros_like(g.xy)
    _, lower, _, lower_ring, opening = eye(g, left)
    under_eye = g.xy[lower].mean(0) + np.array([0.0, 0.07 * g.face_height])
    w = gauss(g.xy, under_eye, 0.07 * g.face_height)
    d[:, 1] = -0.035 * g.face_height * w
    d[lower, 1] += -0.12 * opening
    d[lower_ring, 1] += -0.1 * opening
    return d
