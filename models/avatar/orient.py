"""A portrait that lies wrong — upside down, or on its side with no orientation tag — is
turned upright before enrollment, as a phone's orientation tag would have it shown.

The face mesh fits an upright face even to an upside-down one (a plausible mesh at the
wrong place, then an animated head standing on its crown), and finds none at all in
many photos on their side. So the face it found is checked with an orientation-bound
detector: OpenCV's frontal-face Haar cascade, which only fires on upright faces, scores
the crop around the face as it lies and turned over; a turned crop that wins clearly
means the photo is upside down. Where the mesh finds no face, or one turned or tilted
too far, the photo is tried turned by 180, 90 and 270 degrees before that error stands.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from headcast.models.avatar.align import eye_line_angle
from headcast.models.avatar.detect import Detection, detect_landmarks, frontal_cascade
from headcast.models.avatar.errors import NoFaceError, PoseError

log = logging.getLogger(__name__)

CROP_SIDE = 256  # px, the square the cascade scores
CROP_SPAN = 1.5  # the crop's side over the face mesh's larger extent
#: the cascade's best level weight on the turned crop must pass the crop as it lies by
#: this much (upright faces of the portrait set: at most 1.3 the wrong way)
UPSIDE_DOWN_MARGIN = 3.0
NO_DETECTION = -10.0  # the score of a crop where the cascade finds nothing
TURNS = (1, 3, 2)  # quarter turns (numpy.rot90, counter-clockwise) tried for a missed face
SIDEWAYS_DEG = 60.0  # an eye line tilted past this is a photo on its side, not a tilted head


def _face_crop(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """uint8 (CROP_SIDE, CROP_SIDE) grey square around the landmarks, axis-aligned."""
    lo, hi = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    centre = (lo + hi) / 2
    k = CROP_SIDE / (CROP_SPAN * float(max((hi - lo).max(), 1.0)))
    to_crop = np.array(
        [[k, 0, CROP_SIDE / 2 - k * centre[0]], [0, k, CROP_SIDE / 2 - k * centre[1]]],
        np.float32,
    )
    crop = cv2.warpAffine(
        image, to_crop, (CROP_SIDE, CROP_SIDE),
        flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    return cv2.equalizeHist(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY))


def _upright_score(grey: np.ndarray, cascade: cv2.CascadeClassifier) -> float:
    """The cascade's best level weight for an upright face in ``grey``."""
    min_side = CROP_SIDE * 5 // 16
    _, _, weights = cascade.detectMultiScale3(
        grey, scaleFactor=1.05, minNeighbors=1, minSize=(min_side, min_side),
        outputRejectLevels=True,
    )  # fmt: skip
    return float(np.max(weights)) if len(weights) else NO_DETECTION


def upside_down(image: np.ndarray, points: np.ndarray) -> bool:
    """Whether the face at ``points`` (float (478, 3), image px) in uint8 (H, W, 3) RGB
    ``image`` stands on its crown."""
    cascade = frontal_cascade()
    grey = _face_crop(image, points)
    as_is = _upright_score(grey, cascade)
    turned = _upright_score(np.ascontiguousarray(grey[::-1, ::-1]), cascade)
    return turned >= as_is + UPSIDE_DOWN_MARGIN


def _turn(image: np.ndarray, quarters: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(image, quarters % 4))


def _quarters_to_upright(points: np.ndarray) -> int:
    """Quarter turns (numpy.rot90) that bring a face whose eye line lies past
    SIDEWAYS_DEG upright; 0 for a head merely tilted."""
    roll = float(np.degrees(eye_line_angle(points)))
    if abs(roll) <= SIDEWAYS_DEG:
        return 0
    if abs(roll) >= 180.0 - SIDEWAYS_DEG:
        return 2
    return 1 if roll > 0 else 3


def _find(image: np.ndarray) -> tuple[int, Detection]:
    """(quarter turns of ``image`` in which a face was found, that face). The photo as it
    lies first; where that finds no usable face, turned."""
    try:
        return 0, detect_landmarks(image)
    except (NoFaceError, PoseError) as exc:
        for quarters in TURNS:
            try:
                # the mesh alone: a wide shot's small face is searched for as it lies
                return quarters, detect_landmarks(_turn(image, quarters), small_faces=False)
            except (NoFaceError, PoseError):
                continue
        raise exc


def _redetect(image: np.ndarray, quarters: int, det: Detection, more: int) -> tuple[int, Detection]:
    """The face found again ``more`` quarter turns further, or as it was if not found."""
    try:
        return quarters + more, detect_landmarks(_turn(image, quarters + more))
    except (NoFaceError, PoseError):
        return quarters, det


def detect_upright(image: np.ndarray) -> tuple[np.ndarray, Detection]:
    """uint8 (H, W, 3) RGB portrait -> (the portrait upright, its face's landmarks there).

    The portrait comes back as it was unless it lay upside down or on its side; then
    turned, with a warning. Raises :class:`EnrollError` as
    :func:`~models.avatar.detect.detect_landmarks` does when no turn finds a usable face.
    """
    quarters, det = _find(image)
    # a face the mesh found on its side or upside down, the right way round
    more = _quarters_to_upright(det.points)
    if more:
        quarters, det = _redetect(image, quarters, det, more)
    # a face the mesh fitted upright to an upside-down one
    if upside_down(_turn(image, quarters), det.points):
        quarters, det = _redetect(image, quarters, det, 2)
    quarters %= 4
    if quarters:
        how = "upside down" if quarters == 2 else "on its side"
        log.warning("the portrait lies %s: enrolled it turned upright", how)
    return _turn(image, quarters), det
