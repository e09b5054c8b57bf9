"""Head-frame alignment of a photo cropped close to the head (models/avatar/align.py)."""

from __future__ import annotations

import numpy as np

from headcast.models.avatar import align
from headcast.models.avatar.landmarks import CHIN, EYE_L_CORNERS, EYE_R_CORNERS, FOREHEAD_TOP


def _points(eye_y: float, cx: float, face_h: float) -> np.ndarray:
    """478 landmarks with only the ones the alignment reads placed: a level face."""
    pts = np.zeros((478, 3), np.float32)
    pts[list(EYE_R_CORNERS), :2] = (cx - 0.2 * face_h, eye_y)
    pts[list(EYE_L_CORNERS), :2] = (cx + 0.2 * face_h, eye_y)
    pts[FOREHEAD_TOP, :2] = (cx, eye_y - 0.45 * face_h)
    pts[CHIN, :2] = (cx, eye_y + 0.55 * face_h)
    return pts


def test_a_close_crop_ends_in_a_soft_extension_not_streaks() -> None:
    # Horizontal stripes 6 px apart (a flag, blinds): repeating the edge pixels past
    # the photo's side draws them on as streaks across the frame.
    rng = np.random.default_rng(0)
    image = np.repeat(rng.integers(0, 256, (50, 1, 3)), 6, axis=0).astype(np.uint8)
    image = np.ascontiguousarray(np.repeat(image, 200, axis=1))  # (300, 200, 3)
    points = _points(eye_y=130.0, cx=100.0, face_h=150.0)
    frame, _, mat = align.apply_alignment(image, points, 512)
    streaked = align.cv2.warpAffine(
        image, mat, (512, 512), flags=align.cv2.INTER_CUBIC, borderMode=align.cv2.BORDER_REPLICATE
    )
    inside = align.cv2.warpAffine(np.ones((300, 200), np.float32), mat, (512, 512))
    assert inside.min() == 0.0  # the frame does reach past the photo's sides
    far = align.cv2.distanceTransform((inside < 0.999).astype(np.uint8), align.cv2.DIST_L2, 3)
    far = far > align.EDGE_RAMP * 512

    def stripes(img: np.ndarray) -> float:  # contrast between neighbouring rows
        return float(np.abs(np.diff(img.astype(np.float32), axis=0))[far[1:]].mean())

    assert stripes(streaked) > 5.0
    assert stripes(frame) < 0.1 * stripes(streaked)
    # The photo itself is untouched, and the colours carry on past its edge.
    whole = inside >= 0.999
    assert np.array_equal(frame[whole], streaked[whole])
    assert abs(float(frame[far].mean()) - float(image.mean())) < 12.0
