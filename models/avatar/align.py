"""Align a portrait to the head frame: eyes level, face at a fixed size and place."""

from __future__ import annotations

import cv2
import numpy as np

from headcast.models.avatar.landmarks import CHIN, EYE_L_CORNERS, EYE_R_CORNERS, FOREHEAD_TOP

FACE_HEIGHT_FRAC = 0.42  # forehead-top..chin as a fraction of the frame side
FACE_CENTER = (0.5, 0.53)  # where the forehead..chin midpoint lands (fractions of the side)


def alignment_matrix(points: np.ndarray, size: int) -> np.ndarray:
    """Similarity transform, float64 (2, 3), portrait pixels -> head-frame pixels."""
    eye_r = points[list(EYE_R_CORNERS), :2].mean(axis=0)
    eye_l = points[list(EYE_L_CORNERS), :2].mean(axis=0)
    dx, dy = eye_l - eye_r
    angle = np.arctan2(dy, dx)
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
        image, mat, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE
    )
    xy = points[:, :2].astype(np.float64) @ mat[:, :2].T + mat[:, 2]
    out = np.concatenate([xy, points[:, 2:3] * scale], axis=1).astype(np.float32)
    return aligned, out, mat
