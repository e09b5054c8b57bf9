"""Align a portrait to the head frame: eyes level, face at a fixed size and place."""

from __future__ import annotations

import cv2
import numpy as np

from headcast.models.avatar.landmarks import CHIN, EYE_L_CORNERS, EYE_R_CORNERS, FOREHEAD_TOP

FACE_HEIGHT_FRAC = 0.42  # forehead-top..chin as a fraction of the frame side
FACE_CENTER = (0.5, 0.53)  # where the forehead..chin midpoint lands (fractions of the side)
# Where the head frame reaches past the photo's edge, the photo is mirrored at the edge
# and, farther out, gives way to its edge pixels repeated and blurred (fully EDGE_RAMP of
# the side away), so a close crop ends in a soft extension of its colours: repeating
# the edge pixels right up to the edge drew every stripe of a flag on as a streak.
EDGE_BLUR = 0.08  # Gaussian sigma, fraction of the frame side
EDGE_RAMP = 0.06  # fraction of the frame side


def eye_line_angle(points: np.ndarray) -> float:
    """Radians from the image's x axis to the line from the subject's right eye to the
    left (0 for a level face, +-pi for one upside down), landmarks float (478, >=2)."""
    eye_r = points[list(EYE_R_CORNERS), :2].mean(axis=0)
    eye_l = points[list(EYE_L_CORNERS), :2].mean(axis=0)
    dx, dy = eye_l - eye_r
    return float(np.arctan2(dy, dx))


def alignment_matrix(points: np.ndarray, size: int) -> np.ndarray:
    """Similarity transform, float64 (2, 3), portrait pixels -> head-frame pixels."""
    angle = eye_line_angle(points)
    top, chin = points[FOREHEAD_TOP, :2], points[CHIN, :2]
    face_h = float(np.linalg.norm(chin - top))
    scale = FACE_HEIGHT_FRAC * size / face_h
    center = (top + chin) / 2
    cos, sin = np.cos(-angle) * scale, np.sin(-angle) * scale
    rot = np.array([[cos, -sin], [sin, cos]])
    target = np.array(FACE_CENTER) * size
    shift = target - rot @ center
    return np.concatenate([rot, shift[:, None]], axis=1)


def apply_alignment(
    image: np.ndarray, points: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (aligned uint8 (size, size, 3), landmarks float32 (478, 3) in frame pixels, matrix (2, 3))."""
    mat = alignment_matrix(points, size)
    scale = float(np.hypot(mat[0, 0], mat[1, 0]))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    aligned = cv2.warpAffine(
        image, mat, (size, size), flags=interp, borderMode=cv2.BORDER_REFLECT_101
    )
    inside = cv2.warpAffine(
        np.ones(image.shape[:2], np.float32), mat, (size, size), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0.0,
    )  # fmt: skip
    if float(inside.min()) < 0.999:
        repeated = cv2.warpAffine(
            image, mat, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE
        )
        aligned = soften_outside(aligned, inside, repeated)
    xy = points[:, :2].astype(np.float64) @ mat[:, :2].T + mat[:, 2]
    out = np.concatenate([xy, points[:, 2:3] * scale], axis=1).astype(np.float32)
    return aligned, out, mat


def soften_outside(
    frame: np.ndarray, inside: np.ndarray, repeated: np.ndarray | None = None
) -> np.ndarray:
    """uint8 (S, S, 3) frame whose pixels outside the photo mirror it, float32 (S, S)
    share of each pixel inside the photo, the frame with the photo's edge repeated
    instead (default: ``frame``) -> the frame with the outside going over from the
    mirror to the repeated edge blurred, with distance from the edge; pixels wholly
    inside are unchanged."""
    size = frame.shape[0]
    source = frame if repeated is None else repeated
    blurred = cv2.GaussianBlur(source, (0, 0), EDGE_BLUR * size).astype(np.float32)
    outside = (inside < 0.999).astype(np.uint8)
    dist = cv2.distanceTransform(outside, cv2.DIST_L2, 3)
    ramp = np.clip(dist / (EDGE_RAMP * size), 0.0, 1.0) * (1.0 - np.clip(inside, 0.0, 1.0))
    out = frame.astype(np.float32) + ramp[..., None] * (blurred - frame.astype(np.float32))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
