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

    def stripes(img: np.ndarray, where: np.ndarray) -> float:  # neighbouring rows' contrast
        return float(np.abs(np.diff(img.astype(np.float32), axis=0))[where[1:]].mean())

    assert stripes(streaked, far) > 5.0
    assert stripes(frame, far) < 0.1 * stripes(streaked, far)
    # The photo itself is untouched, and the colours carry on past its edge.
    mirrored = align.cv2.warpAffine(
        image, mat, (512, 512), flags=align.cv2.INTER_CUBIC,
        borderMode=align.cv2.BORDER_REFLECT_101,
    )  # fmt: skip
    whole = inside >= 0.999
    assert np.array_equal(frame[whole], mirrored[whole])
    assert abs(float(frame[far].mean()) - float(image.mean())) < 12.0


def test_past_the_top_the_photo_carries_on_without_streaks_up_to_its_edge() -> None:
    # A textured photo with the head near its top: repeating the top row draws each of
    # its pixels on as a vertical streak; mirrored, the texture carries on as texture.
    rng = np.random.default_rng(1)
    image = align.cv2.GaussianBlur(rng.integers(0, 256, (400, 300, 3)).astype(np.uint8), (0, 0), 2)
    points = _points(eye_y=90.0, cx=150.0, face_h=200.0)
    frame, _, mat = align.apply_alignment(image, points, 512)
    inside = align.cv2.warpAffine(np.ones((400, 300), np.float32), mat, (512, 512))
    streaked = align.cv2.warpAffine(
        image, mat, (512, 512), flags=align.cv2.INTER_CUBIC, borderMode=align.cv2.BORDER_REPLICATE
    )
    rows = np.flatnonzero(inside[:, 256] == 0.0)
    assert len(rows) > 10  # the frame reaches past the photo's top
    band = slice(max(rows.max() - 10, 0), rows.max())  # the 10 rows just past the edge

    def streaks(img: np.ndarray) -> float:  # across-columns contrast / along-columns
        a = img[band, 100:400].astype(np.float32)
        return float(np.abs(np.diff(a, axis=1)).mean() / (np.abs(np.diff(a, axis=0)).mean() + 1e-3))

    assert streaks(streaked) > 10.0
    assert streaks(frame) < 3.0
