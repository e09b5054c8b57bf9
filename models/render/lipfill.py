"""Lips over the portrait's own teeth when the lips seal: the *lip fill*.

The flow closes a portrait's rest opening (teeth, an open mouth) by squeezing it into a
thin band between the lips; a warp cannot remove pixels, so that band still shows
teeth: a light line of 1-3 px at 512 between sealed lips, wider on a small face
enlarged. The fill replaces the opening, in the portrait itself, by lip texture, and
the renderer mixes it in as the opening closes (``warp_math.fill_weight``), so
whatever remains of the band between sealed lips is lip.

Each pixel of the opening takes the colour of a point inside the nearer lip: in the
mouth frame (``s`` across, ``d`` down, both from the inner-lip ring), a pixel a share
``f`` of the way from a lip's inner edge to the middle of the opening is filled from
``MARGIN_PX + f * DEPTH * thickness`` into that lip (thickness from the outer-lip
landmarks at the same ``s``), so the middle of the band shows the middle of the lips
and the two lips meet at a line. On a toothy smile the face mesh often puts the inner
lip line inside the teeth; the opening is therefore grown by the tooth-like pixels
(``teeth_likeness``) inside the outer lip line that touch it, and each column's lip
edges move out to the last of them. Derived from the pack's image and landmarks when the
renderer starts, like the lid layer: nothing is stored in the pack.
"""

from __future__ import annotations

import cv2
import numpy as np

from headcast.models.avatar import landmarks as L
from headcast.models.avatar.mouth import face_luma, mouth_frame, teeth_likeness
from headcast.models.render.warp_math import SEAM_OPEN_PX, polygon_sdf

MARGIN_PX = 1.5  # the fill starts this far inside a lip: its edge pixels hold teeth too
DEPTH = 0.5  # the middle of the opening takes the colour of the middle of the lips
EDGE_PX = 1.0  # the fill reaches this far outside the opening, fading out
BOX_MARGIN_PX = 2
GROW = 0.6  # the opening grows into at most this share of a lip's thickness


def _profile(
    points: np.ndarray, origin: np.ndarray, u: np.ndarray, v: np.ndarray, width: float
) -> tuple[np.ndarray, np.ndarray]:
    """A lip line as (s, d): s across the mouth 0..1, d down from ``origin`` in px, sorted by s."""
    rel = points - origin
    s = rel @ u / width + 0.5
    d = rel @ v
    order = np.argsort(s)
    return s[order], d[order]


def lip_fill(
    image: np.ndarray, landmarks: np.ndarray
) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """``(box (x0, y0, x1, y1), delta float32 (y1 - y0, x1 - x0, 3))``: what to add to the
    portrait inside ``box``, times ``warp_math.fill_weight``, so the rest opening shows lips.

    None when the portrait's lips are (nearly) closed at rest, or its mouth has no
    width: nothing to fill.
    """
    pts = landmarks[:, :2].astype(np.float64)
    ring = pts[list(L.LIPS_INNER)]
    origin, u, v, width = mouth_frame(ring)
    gap = float((pts[L.LOWER_INNER_MID] - origin) @ v)
    if gap < SEAM_OPEN_PX or width < 1.0:
        return None
    height, wide = image.shape[:2]
    outer = pts[list(L.LIPS_OUTER)]
    lo = np.floor(outer.min(axis=0)).astype(int) - BOX_MARGIN_PX
    hi = np.ceil(outer.max(axis=0)).astype(int) + BOX_MARGIN_PX + 1
    x0, x1 = (int(np.clip(k, 0, wide)) for k in (lo[0], hi[0]))
    y0, y1 = (int(np.clip(k, 0, height)) for k in (lo[1], hi[1]))
    if x1 <= x0 or y1 <= y0:
        return None
    py, px = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    inside = polygon_sdf(px, py, ring)
    rel_x, rel_y = px - origin[0], py - origin[1]
    s = (rel_x * u[0] + rel_y * u[1]) / width + 0.5
    d = rel_x * v[0] + rel_y * v[1]
    line = {
        name: np.interp(s, *_profile(pts[list(idx)], origin, u, v, width))
        for name, idx in (
            ("up_in", L.LIPS_INNER_UPPER),
            ("lo_in", L.LIPS_INNER_LOWER),
            ("up_out", L.LIPS_OUTER_UPPER),
            ("lo_out", L.LIPS_OUTER_LOWER),
        )
    }
    # tooth-like pixels count only this near the inner lip line: a pale lip is not teeth
    reach = (d >= line["up_in"] - GROW * np.maximum(line["up_in"] - line["up_out"], 0.0)) & (
        d <= line["lo_in"] + GROW * np.maximum(line["lo_out"] - line["lo_in"], 0.0)
    )
    skin_luma = face_luma(image, landmarks)
    opening = _opening(image[y0:y1, x0:x1], inside, reach, pts, (x0, y0), skin_luma)
    _widen_edges(line, opening, s, d, width)
    # Full inside the opening, fading out over EDGE_PX beyond it (its edge pixels are mixed).
    outside = cv2.distanceTransform((~opening).astype(np.uint8), cv2.DIST_L2, 3)
    weight = np.clip((EDGE_PX + 0.5 - outside) / EDGE_PX, 0.0, 1.0)
    half = np.maximum(0.5 * (line["lo_in"] - line["up_in"]), 0.5)
    upper = d < line["up_in"] + half
    f_up = np.clip((d - line["up_in"]) / half, 0.0, 1.0)
    f_lo = np.clip((line["lo_in"] - d) / half, 0.0, 1.0)
    thick_up = np.maximum(line["up_in"] - line["up_out"], 0.0)
    thick_lo = np.maximum(line["lo_out"] - line["lo_in"], 0.0)
    src_d = np.where(
        upper,
        line["up_in"] - MARGIN_PX - f_up * DEPTH * thick_up,
        line["lo_in"] + MARGIN_PX + f_lo * DEPTH * thick_lo,
    )
    # The source point: same s, depth src_d along v.
    sx = origin[0] + (s - 0.5) * width * u[0] + src_d * v[0]
    sy = origin[1] + (s - 0.5) * width * u[1] + src_d * v[1]
    filled = cv2.remap(
        image.astype(np.float32),
        sx.astype(np.float32),
        sy.astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    delta = (filled - image[y0:y1, x0:x1].astype(np.float32)) * weight[..., None]
    return (x0, y0, x1, y1), delta.astype(np.float32)


def _opening(
    box: np.ndarray,
    inside: np.ndarray,
    reach: np.ndarray,
    pts: np.ndarray,
    at: tuple[int, int],
    face_luma: float,
) -> np.ndarray:
    """bool (h, w): the rest opening (inner-lip polygon) and the tooth-like pixels inside
    the outer lip line and ``reach`` (bool (h, w)) connected to it."""
    outer = np.zeros(box.shape[:2], np.uint8)
    poly = np.round(pts[list(L.LIPS_OUTER)] - np.array(at, np.float64)).astype(np.int32)
    cv2.fillPoly(outer, [poly], 1)
    core = inside >= 0.0
    toothy = (teeth_likeness(box, face_luma) > 0.5) & (outer > 0) & reach
    _, labels = cv2.connectedComponents((core | toothy).astype(np.uint8), connectivity=8)
    touching = np.unique(labels[core])
    return core | (np.isin(labels, touching[touching > 0]) & toothy)


def _widen_edges(
    line: dict[str, np.ndarray], opening: np.ndarray, s: np.ndarray, d: np.ndarray, width: float
) -> None:
    """Move each column's inner lip lines out to the last pixel of ``opening`` (in place)."""
    bins = max(int(np.ceil(width)), 4)
    col = np.clip((s * bins).astype(int), 0, bins - 1)
    top = np.full(bins, np.inf)
    bottom = np.full(bins, -np.inf)
    np.minimum.at(top, col[opening], d[opening])
    np.maximum.at(bottom, col[opening], d[opening])
    at_top = top[col]
    at_bottom = bottom[col]
    line["up_in"] = np.minimum(line["up_in"], np.where(np.isfinite(at_top), at_top, np.inf))
    line["lo_in"] = np.maximum(line["lo_in"], np.where(np.isfinite(at_bottom), at_bottom, -np.inf))


def full_frame(fill: tuple[tuple[int, int, int, int], np.ndarray] | None, size: int) -> np.ndarray:
    """A :func:`lip_fill` as a whole frame's delta: float32 (S, S, 3), zero outside its box."""
    out = np.zeros((size, size, 3), np.float32)
    if fill is not None:
        (x0, y0, x1, y1), delta = fill
        out[y0:y1, x0:x1] = delta
    return out
