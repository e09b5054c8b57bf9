"""Measurements and region weights of one aligned face, for authoring channel motion.

Every helper returns a per-landmark array: ``float (478,)`` weights in 0..1 or
``float (478, 2)`` displacements in head-frame pixels. Left/right are the subject's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from headcast.models.avatar import landmarks as L


@dataclass(frozen=True)
class FaceGeometry:
    """Measurements of one aligned face (head-frame pixels)."""

    xy: np.ndarray  # float32 (478, 2)
    mouth_center: np.ndarray  # (2,)
    mouth_width: float
    face_height: float
    upper_lip_thickness: float
    lower_lip_thickness: float
    eye_r_open: float
    eye_l_open: float
    brow_r_gap: float
    brow_l_gap: float
    hinge_y: float
    chin_y: float

    @classmethod
    def of(cls, points: np.ndarray) -> FaceGeometry:
        xy = points[:, :2].astype(np.float64)
        corner_r, corner_l = xy[L.MOUTH_CORNER_R], xy[L.MOUTH_CORNER_L]
        mid = (xy[L.UPPER_INNER_MID] + xy[L.LOWER_INNER_MID]) / 2
        eye_r_top = xy[list(L.EYE_R_UPPER)].mean(0)
        eye_r_bot = xy[list(L.EYE_R_LOWER)].mean(0)
        eye_l_top = xy[list(L.EYE_L_UPPER)].mean(0)
        eye_l_bot = xy[list(L.EYE_L_LOWER)].mean(0)
        face_h = float(np.linalg.norm(xy[L.FOREHEAD_TOP] - xy[L.CHIN]))
        eye_y = (eye_r_top[1] + eye_l_top[1]) / 2
        return cls(
            xy=xy,
            mouth_center=mid,
            mouth_width=float(np.linalg.norm(corner_l - corner_r)),
            face_height=face_h,
            upper_lip_thickness=float(xy[L.UPPER_INNER_MID, 1] - xy[L.UPPER_OUTER_MID, 1]),
            lower_lip_thickness=float(xy[L.LOWER_OUTER_MID, 1] - xy[L.LOWER_INNER_MID, 1]),
            # Lids of a closed or squinting eye still span a few pixels.
            eye_r_open=max(float(eye_r_bot[1] - eye_r_top[1]), 0.02 * face_h),
            eye_l_open=max(float(eye_l_bot[1] - eye_l_top[1]), 0.02 * face_h),
            brow_r_gap=float(eye_r_top[1] - xy[list(L.BROW_R)].mean(0)[1]),
            brow_l_gap=float(eye_l_top[1] - xy[list(L.BROW_L)].mean(0)[1]),
            hinge_y=eye_y + 0.12 * face_h,
            chin_y=float(xy[L.CHIN, 1]),
        )


def idx(*groups: tuple[int, ...]) -> np.ndarray:
    return np.unique(np.concatenate([np.asarray(g) for g in groups]))


LOWER_LIP = idx(L.LIPS_OUTER_LOWER[1:-1], L.LIPS_INNER_LOWER[1:-1])
UPPER_LIP = idx(L.LIPS_OUTER_UPPER[1:-1], L.LIPS_INNER_UPPER[1:-1])
# The corner clusters of the lip mesh (outer, two intermediate rings, inner).
CORNERS = idx((61, 76, 62, 78, 291, 306, 292, 308))


def gauss(xy: np.ndarray, center: np.ndarray, radius: float) -> np.ndarray:
    d2 = ((xy - center) ** 2).sum(axis=1)
    return np.exp(-d2 / (2.0 * radius**2))


def slit_y(g: FaceGeometry, x: np.ndarray) -> np.ndarray:
    """The lip slit (midline of the inner-lip ring) at abscissae ``x``; flat beyond the corners."""
    up = g.xy[list(L.LIPS_INNER_UPPER)]
    lo = g.xy[list(L.LIPS_INNER_LOWER)]
    ou, ol = np.argsort(up[:, 0]), np.argsort(lo[:, 0])
    return 0.5 * (np.interp(x, up[ou, 0], up[ou, 1]) + np.interp(x, lo[ol, 0], lo[ol, 1]))


def half_gap(g: FaceGeometry, x: np.ndarray) -> np.ndarray:
    """Half the opening between the inner lips at abscissae ``x`` (0 on a closed mouth)."""
    up = g.xy[list(L.LIPS_INNER_UPPER)]
    lo = g.xy[list(L.LIPS_INNER_LOWER)]
    ou, ol = np.argsort(up[:, 0]), np.argsort(lo[:, 0])
    gap = np.interp(x, lo[ol, 0], lo[ol, 1]) - np.interp(x, up[ou, 0], up[ou, 1])
    return 0.5 * np.maximum(gap, 0.0)


def lower_side(g: FaceGeometry) -> np.ndarray:
    """0..1 per landmark: how much it belongs to the lower jaw.

    Between the mouth corners the lips are separate sheets, so the split at the
    slit is sharp; beyond the corners the cheek blends smoothly.
    """
    x, y = g.xy[:, 0], g.xy[:, 1]
    beyond = np.maximum(np.abs(x - g.mouth_center[0]) - 0.5 * g.mouth_width, 0.0)
    tau = 0.3 + 0.6 * beyond
    side = 1.0 / (1.0 + np.exp(-np.clip((y - slit_y(g, x)) / tau, -50, 50)))
    side[LOWER_LIP] = 1.0
    side[UPPER_LIP] = 0.0
    side[CORNERS] = 0.2  # corners mostly ride with the upper lip (and the cheek)
    return side


def across_the_slit(g: FaceGeometry, triangles: np.ndarray) -> np.ndarray:
    """bool (T,): landmark triangles ``int (T, 3)`` that join the upper lip to the lower
    one across the slit, between the mouth corners. They are the mouth's opening, not
    skin: opening the jaw stretches them, and where the landmarks of a closed mouth
    cross (a tilted, pursed mouth) it turns them over, which is no fold of the face."""
    lower = lower_side(g)[triangles] >= 0.5
    spans = lower.any(axis=1) & ~lower.all(axis=1)
    near = (np.abs(g.xy[triangles, 0] - g.mouth_center[0]) < 0.75 * g.mouth_width).all(axis=1)
    return spans & near


def lip_band(g: FaceGeometry, lower: bool) -> np.ndarray:
    """Signed distance of every landmark from the slit, into the upper or lower lip (px)."""
    dist = g.xy[:, 1] - slit_y(g, g.xy[:, 0])
    return dist if lower else -dist


def compress_lip(g: FaceGeometry, lower: bool, amount: float, w: np.ndarray) -> np.ndarray:
    """Squeeze one lip towards its inner edge by ``amount`` of its thickness (a monotonic
    map: points keep their order, so nothing folds), fading out past the lip. The edge is
    the slit on a closed mouth; on an open one the lip keeps its own edge, so it never
    crosses the other lip."""
    thick = g.lower_lip_thickness if lower else g.upper_lip_thickness
    dist = lip_band(g, lower) - half_gap(g, g.xy[:, 0])
    inside = np.clip(dist, 0.0, thick)
    beyond = np.clip((dist - thick) / (1.5 * thick), 0.0, 1.0)
    fade = 1.0 - beyond * beyond * (3 - 2 * beyond)
    shift = amount * np.where(dist <= thick, inside, thick * fade) * (dist > 0)
    span = np.clip(1.2 - np.abs(g.xy[:, 0] - g.mouth_center[0]) / (0.5 * g.mouth_width), 0.0, 1.0)
    d = np.zeros_like(g.xy)
    d[:, 1] = (-shift if lower else shift) * w * span
    return d


def side_weight(g: FaceGeometry, left: bool) -> np.ndarray:
    """0..1 per landmark: 1 at the subject's left (image right) mouth corner, 0 past the centre."""
    u = (g.xy[:, 0] - g.mouth_center[0]) / (g.mouth_width / 2)
    u = u if left else -u
    return np.clip(0.5 + 0.5 * u, 0.0, 1.0) ** 2


def mouth_region(g: FaceGeometry, scale: float = 0.55) -> np.ndarray:
    return gauss(g.xy, g.mouth_center, scale * g.mouth_width)


def eye(
    g: FaceGeometry, left: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    if left:
        return (
            np.array(L.EYE_L_UPPER),
            np.array(L.EYE_L_LOWER),
            np.array(L.EYE_L_UPPER_OUTER),
            np.array(L.EYE_L_LOWER_OUTER),
            g.eye_l_open,
        )
    return (
        np.array(L.EYE_R_UPPER),
        np.array(L.EYE_R_LOWER),
        np.array(L.EYE_R_UPPER_OUTER),
        np.array(L.EYE_R_LOWER_OUTER),
        g.eye_r_open,
    )


def lid_gap(g: FaceGeometry, upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Vertical distance from each upper-lid point down to the lower lid at the same x."""
    corners = np.array(L.EYE_L_CORNERS if L.EYE_L_LOWER[0] in lower else L.EYE_R_CORNERS)
    rim = np.concatenate([lower, corners])
    lx, ly = g.xy[rim, 0], g.xy[rim, 1]
    order = np.argsort(lx)
    lower_y = np.interp(g.xy[upper, 0], lx[order], ly[order])
    return np.maximum(lower_y - g.xy[upper, 1], 0.0)
