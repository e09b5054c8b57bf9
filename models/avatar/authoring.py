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
from dataclasses import dataclass

import numpy as np

from models.avatar import landmarks as L
from models.channels import EXPRESSION_CHANNELS, MOUTH_CHANNELS


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


def _idx(*groups: tuple[int, ...]) -> np.ndarray:
    return np.unique(np.concatenate([np.asarray(g) for g in groups]))


LOWER_LIP = _idx(L.LIPS_OUTER_LOWER[1:-1], L.LIPS_INNER_LOWER[1:-1])
UPPER_LIP = _idx(L.LIPS_OUTER_UPPER[1:-1], L.LIPS_INNER_UPPER[1:-1])
# The corner clusters of the lip mesh (outer, two intermediate rings, inner).
CORNERS = _idx((61, 76, 62, 78, 291, 306, 292, 308))
BLINK_CLOSE = 0.92  # share of the lid gap closed at eyeBlink = 1 (no degenerate triangles)
JAW_DROP = 0.36  # lower-lip drop at jawOpen = 1, mouth widths


def _gauss(xy: np.ndarray, center: np.ndarray, radius: float) -> np.ndarray:
    d2 = ((xy - center) ** 2).sum(axis=1)
    return np.exp(-d2 / (2.0 * radius**2))


def _slit_y(g: FaceGeometry, x: np.ndarray) -> np.ndarray:
    """The lip slit (midline of the inner-lip ring) at abscissae ``x``; flat beyond the corners."""
    up = g.xy[list(L.LIPS_INNER_UPPER)]
    lo = g.xy[list(L.LIPS_INNER_LOWER)]
    ou, ol = np.argsort(up[:, 0]), np.argsort(lo[:, 0])
    return 0.5 * (np.interp(x, up[ou, 0], up[ou, 1]) + np.interp(x, lo[ol, 0], lo[ol, 1]))


def _lower_side(g: FaceGeometry) -> np.ndarray:
    """0..1 per landmark: how much it belongs to the lower jaw.

    Between the mouth corners the lips are separate sheets, so the split at the
    slit is sharp; beyond the corners the cheek blends smoothly.
    """
    x, y = g.xy[:, 0], g.xy[:, 1]
    beyond = np.maximum(np.abs(x - g.mouth_center[0]) - 0.5 * g.mouth_width, 0.0)
    tau = 0.3 + 0.6 * beyond
    side = 1.0 / (1.0 + np.exp(-np.clip((y - _slit_y(g, x)) / tau, -50, 50)))
    side[LOWER_LIP] = 1.0
    side[UPPER_LIP] = 0.0
    side[CORNERS] = 0.2  # corners mostly ride with the upper lip (and the cheek)
    return side


def _lip_band(g: FaceGeometry, lower: bool) -> np.ndarray:
    """Signed distance of every landmark from the slit, into the upper or lower lip (px)."""
    dist = g.xy[:, 1] - _slit_y(g, g.xy[:, 0])
    return dist if lower else -dist


def _compress_lip(g: FaceGeometry, lower: bool, amount: float, w: np.ndarray) -> np.ndarray:
    """Squeeze one lip towards the slit by ``amount`` of its thickness (a monotonic map:
    points keep their order, so nothing folds), fading out past the lip."""
    thick = g.lower_lip_thickness if lower else g.upper_lip_thickness
    dist = _lip_band(g, lower)
    inside = np.clip(dist, 0.0, thick)
    beyond = np.clip((dist - thick) / (1.5 * thick), 0.0, 1.0)
    fade = 1.0 - beyond * beyond * (3 - 2 * beyond)
    shift = amount * np.where(dist <= thick, inside, thick * fade) * (dist > 0)
    span = np.clip(1.2 - np.abs(g.xy[:, 0] - g.mouth_center[0]) / (0.5 * g.mouth_width), 0.0, 1.0)
    d = np.zeros_like(g.xy)
    d[:, 1] = (-shift if lower else shift) * w * span
    return d


def _side_weight(g: FaceGeometry, left: bool) -> np.ndarray:
    """0..1 per landmark: 1 at the subject's left (image right) mouth corner, 0 past the centre."""
    u = (g.xy[:, 0] - g.mouth_center[0]) / (g.mouth_width / 2)
    u = u if left else -u
    return np.clip(0.5 + 0.5 * u, 0.0, 1.0) ** 2


def _mouth_region(g: FaceGeometry, scale: float = 0.55) -> np.ndarray:
    return _gauss(g.xy, g.mouth_center, scale * g.mouth_width)


def _eye(
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


def _lid_gap(g: FaceGeometry, upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Vertical distance from each upper-lid point down to the lower lid at the same x."""
    corners = np.array(L.EYE_L_CORNERS if L.EYE_L_LOWER[0] in lower else L.EYE_R_CORNERS)
    rim = np.concatenate([lower, corners])
    lx, ly = g.xy[rim, 0], g.xy[rim, 1]
    order = np.argsort(lx)
    lower_y = np.interp(g.xy[upper, 0], lx[order], ly[order])
    return np.maximum(lower_y - g.xy[upper, 1], 0.0)


# --- mouth bank --------------------------------------------------------------


def jaw_open(g: FaceGeometry) -> np.ndarray:
    # Seen from the front, the mandible's points drop by about the same amount
    # (they are all far in front of the hinge), fading towards the jaw angles
    # near the ears; only the lower-jaw side of the lip slit moves.
    d = np.zeros_like(g.xy)
    half_face = 0.5 * g.face_height * 0.85
    across = np.clip(1.0 - ((g.xy[:, 0] - g.mouth_center[0]) / half_face) ** 2, 0.0, 1.0)
    below = np.clip((g.xy[:, 1] - g.hinge_y) / (g.mouth_center[1] - g.hinge_y), 0.0, 1.0)
    w = across * below * _lower_side(g)
    d[:, 1] = JAW_DROP * g.mouth_width * w
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
    # on the lower lip, fading out below it (the renderer caps it at jawOpen).
    dist = np.maximum(_lip_band(g, True), 0.0)
    thick = g.lower_lip_thickness
    beyond = np.clip((dist - thick) / (2.0 * thick), 0.0, 1.0)
    w = 1.0 - beyond * beyond * (3 - 2 * beyond)
    return -jaw_open(g) * w[:, None]


def mouth_funnel(g: FaceGeometry) -> np.ndarray:
    d = np.zeros_like(g.xy)
    rel = g.xy - g.mouth_center
    region = _mouth_region(g, 0.36)
    d[:, 0] = -0.22 * rel[:, 0] * region
    d[:, 1] = 0.12 * g.mouth_width * np.tanh(rel[:, 1] / (0.1 * g.mouth_width)) * region
    return d


def mouth_pucker(g: FaceGeometry) -> np.ndarray:
    d = np.zeros_like(g.xy)
    rel = g.xy - g.mouth_center
    region = _mouth_region(g, 0.5)
    d[:, 0] = -0.38 * rel[:, 0] * region
    d[:, 1] = -0.08 * rel[:, 1] * region
    return d


def _stretch(g: FaceGeometry, left: bool) -> np.ndarray:
    d = np.zeros_like(g.xy)
    w = _side_weight(g, left) * _mouth_region(g, 0.6)
    d[:, 0] = (0.14 if left else -0.14) * g.mouth_width * w
    d[:, 1] = 0.05 * g.mouth_width * w
    return d


def _roll(g: FaceGeometry, lower: bool) -> np.ndarray:
    return _compress_lip(g, lower, 0.55, np.ones(len(g.xy)))


def _shrug(g: FaceGeometry, lower: bool) -> np.ndarray:
    d = np.zeros_like(g.xy)
    region = _mouth_region(g, 0.6)
    if lower:
        # Chin raiser pushes the lower lip up; the upper lip rides on it.
        side = _lower_side(g)
        d[:, 1] = -0.09 * g.mouth_width * region * (0.6 + 0.4 * side)
    else:
        d[:, 1] = -0.08 * g.mouth_width * region * (1.0 - 0.2 * _lower_side(g))
    return d


def _press(g: FaceGeometry, left: bool) -> np.ndarray:
    w = 0.4 + 0.6 * _side_weight(g, left)
    return _compress_lip(g, False, 0.35, w) + _compress_lip(g, True, 0.35, w)


def _lower_down(g: FaceGeometry, left: bool) -> np.ndarray:
    d = np.zeros_like(g.xy)
    w = (0.3 + 0.7 * _side_weight(g, left)) * _mouth_region(g, 0.5)
    lower = _lower_side(g) * w
    d[:, 1] = 0.2 * g.mouth_width * lower
    return d


def _upper_up(g: FaceGeometry, left: bool) -> np.ndarray:
    d = np.zeros_like(g.xy)
    w = (0.3 + 0.7 * _side_weight(g, left)) * _mouth_region(g, 0.55)
    upper = (1.0 - _lower_side(g)) * w
    d[:, 1] = -0.14 * g.mouth_width * upper
    return d


# --- expression bank ---------------------------------------------------------


def _smile(g: FaceGeometry, left: bool) -> np.ndarray:
    d = np.zeros_like(g.xy)
    corner = g.xy[L.MOUTH_CORNER_L if left else L.MOUTH_CORNER_R]
    w = _gauss(g.xy, corner, 0.42 * g.mouth_width)
    d[:, 0] = (0.14 if left else -0.14) * g.mouth_width * w
    d[:, 1] = -0.18 * g.mouth_width * w
    cheek = _gauss(g.xy, corner + np.array([0.0, -0.12 * g.face_height]), 0.3 * g.mouth_width)
    d[:, 1] += -0.05 * g.mouth_width * cheek
    return d


def _frown(g: FaceGeometry, left: bool) -> np.ndarray:
    d = np.zeros_like(g.xy)
    corner = g.xy[L.MOUTH_CORNER_L if left else L.MOUTH_CORNER_R]
    w = _gauss(g.xy, corner, 0.3 * g.mouth_width)
    w = w * (g.xy[:, 1] > g.mouth_center[1] - 0.25 * g.mouth_width)  # the cheek above stays
    d[:, 0] = (0.03 if left else -0.03) * g.mouth_width * w
    d[:, 1] = 0.13 * g.mouth_width * w
    return d


def _brow_points(left: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if left:
        return np.array(L.BROW_L), np.array(L.BROW_L_INNER), np.array(L.BROW_L_OUTER)
    return np.array(L.BROW_R), np.array(L.BROW_R_INNER), np.array(L.BROW_R_OUTER)


def _brow_field(
    g: FaceGeometry, left: bool, inner_amt: float, outer_amt: float, inward: float = 0.0
) -> np.ndarray:
    """Move one brow: a vertical lift blended from inner to outer end, spread to nearby skin."""
    d = np.zeros_like(g.xy)
    brow, inner, outer = _brow_points(left)
    gap = g.brow_l_gap if left else g.brow_r_gap
    xi, xo = g.xy[inner, 0].mean(), g.xy[outer, 0].mean()
    t = np.clip((g.xy[:, 0] - xi) / (xo - xi), 0.0, 1.0)
    amount = (inner_amt * (1 - t) + outer_amt * t) * gap
    center = g.xy[brow].mean(0)
    w = _gauss(g.xy, center, 0.55 * abs(xo - xi))
    w[brow] = 1.0
    # Eyes and lids stay put: only the brow and the skin above the lid crease move.
    eye_upper, eye_lower, crease, _, _ = _eye(g, left)
    w[eye_upper] *= 0.15
    w[eye_lower] = 0.0
    w[np.array(L.IRIS_L + L.IRIS_R)] = 0.0
    w[crease] *= 0.5
    d[:, 1] = -amount * w
    d[:, 0] = inward * gap * (1 - t) * w * (-1.0 if left else 1.0)
    return d


def _both(f: Callable[[FaceGeometry, bool], np.ndarray]) -> Callable[[FaceGeometry], np.ndarray]:
    return lambda g: f(g, True) + f(g, False)


def _blink(g: FaceGeometry, left: bool) -> np.ndarray:
    # Everything between the lids is squeezed towards the lower lid by one factor,
    # so the iris stays below the closing lid; the lid crease follows part-way.
    d = np.zeros_like(g.xy)
    upper, lower, crease, _, _ = _eye(g, left)
    iris = np.array(L.IRIS_L if left else L.IRIS_R)
    closing = np.concatenate([upper, iris])
    d[closing, 1] = BLINK_CLOSE * _lid_gap(g, closing, lower)
    d[crease, 1] = 0.35 * _lid_gap(g, crease, lower)
    return d


def _wide(g: FaceGeometry, left: bool) -> np.ndarray:
    d = np.zeros_like(g.xy)
    upper, _, crease, _, opening = _eye(g, left)
    d[upper, 1] = -0.3 * opening
    d[crease, 1] = -0.22 * opening
    return d


def _squint(g: FaceGeometry, left: bool) -> np.ndarray:
    d = np.zeros_like(g.xy)
    upper, lower, _, lower_ring, opening = _eye(g, left)
    d[lower, 1] = -0.28 * opening
    d[lower_ring, 1] = -0.18 * opening
    d[upper, 1] = 0.1 * opening
    return d


def _cheek_squint(g: FaceGeometry, left: bool) -> np.ndarray:
    d = np.zeros_like(g.xy)
    _, lower, _, lower_ring, opening = _eye(g, left)
    under_eye = g.xy[lower].mean(0) + np.array([0.0, 0.07 * g.face_height])
    w = _gauss(g.xy, under_eye, 0.07 * g.face_height)
    d[:, 1] = -0.035 * g.face_height * w
    d[lower, 1] += -0.12 * opening
    d[lower_ring, 1] += -0.1 * opening
    return d


Author = Callable[[FaceGeometry], np.ndarray]


def _sided(f: Callable[[FaceGeometry, bool], np.ndarray], left: bool) -> Author:
    return lambda g: f(g, left)


AUTHORS: dict[str, Author] = {
    "jawOpen": jaw_open,
    "mouthClose": mouth_close,
    "mouthFunnel": mouth_funnel,
    "mouthPucker": mouth_pucker,
    "mouthStretchLeft": _sided(_stretch, True),
    "mouthStretchRight": _sided(_stretch, False),
    "mouthRollLower": lambda g: _roll(g, True),
    "mouthRollUpper": lambda g: _roll(g, False),
    "mouthShrugLower": lambda g: _shrug(g, True),
    "mouthShrugUpper": lambda g: _shrug(g, False),
    "mouthPressLeft": _sided(_press, True),
    "mouthPressRight": _sided(_press, False),
    "mouthLowerDownLeft": _sided(_lower_down, True),
    "mouthLowerDownRight": _sided(_lower_down, False),
    "mouthUpperUpLeft": _sided(_upper_up, True),
    "mouthUpperUpRight": _sided(_upper_up, False),
    "mouthSmileLeft": _sided(_smile, True),
    "mouthSmileRight": _sided(_smile, False),
    "mouthFrownLeft": _sided(_frown, True),
    "mouthFrownRight": _sided(_frown, False),
    "browInnerUp": _both(lambda g, left: _brow_field(g, left, 0.5, 0.1)),
    "browDownLeft": lambda g: _brow_field(g, True, 0.42, 0.25, inward=0.2) * np.array([1.0, -1.0]),
    "browDownRight": lambda g: _brow_field(g, False, 0.42, 0.25, inward=0.2)
    * np.array([1.0, -1.0]),
    "browOuterUpLeft": lambda g: _brow_field(g, True, 0.08, 0.5),
    "browOuterUpRight": lambda g: _brow_field(g, False, 0.08, 0.5),
    "eyeBlinkLeft": _sided(_blink, True),
    "eyeBlinkRight": _sided(_blink, False),
    "eyeWideLeft": _sided(_wide, True),
    "eyeWideRight": _sided(_wide, False),
    "eyeSquintLeft": _sided(_squint, True),
    "eyeSquintRight": _sided(_squint, False),
    "cheekSquintLeft": _sided(_cheek_squint, True),
    "cheekSquintRight": _sided(_cheek_squint, False),
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
