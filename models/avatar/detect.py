"""Face landmarks at enrollment: MediaPipe Face Mesh (478 points), Haar fallback for small faces.

mediapipe is an enrollment-only dependency (the ``enroll`` extra); serving an
enrolled avatar never imports it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from models.avatar.errors import EnrollError
from models.avatar.landmarks import CHIN, FOREHEAD_TOP, NUM_LANDMARKS

log = logging.getLogger(__name__)

DETECT_MAX_SIDE = 1024  # px; the mesh model sees at most this much
MIN_FACE_HEIGHT = 48  # px in the portrait, forehead-top to chin
MAX_FACES = 4


@dataclass(frozen=True)
class Detection:
    """``points``: float32 (478, 3) pixel x, y of the portrait and z in the same pixel scale
    (larger z = nearer the camera). ``others``: how many more faces were seen."""

    points: np.ndarray
    others: int


def _mesh_points(result: object, width: int, height: int) -> list[np.ndarray]:
    faces = getattr(result, "multi_face_landmarks", None) or []
    out = []
    for face in faces:
        pts = np.array(
            [[p.x * width, p.y * height, -p.z * width] for p in face.landmark], np.float32
        )
        if len(pts) == NUM_LANDMARKS:
            out.append(pts)
    return out


def _face_height(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[FOREHEAD_TOP, :2] - points[CHIN, :2]))


def _run_mesh(image: np.ndarray) -> list[np.ndarray]:
    try:
        import mediapipe as mp
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EnrollError(
            "enrollment needs mediapipe 0.10.21 (install the enroll extra: `make setup-dev`)"
        ) from exc
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True,
        max_num_faces=MAX_FACES,
        refine_landmarks=True,
        min_detection_confidence=0.5,
    ) as mesh:
        return _mesh_points(mesh.process(image), image.shape[1], image.shape[0])


def _haar_boxes(
    image: np.ndarray, min_side: int = 24, neighbors: int = 5
) -> list[tuple[int, int, int, int]]:
    """Frontal-face boxes (x, y, w, h) in ``image`` pixels, largest first."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    boxes = cascade.detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=neighbors, minSize=(min_side, min_side)
    )
    return sorted((tuple(int(v) for v in b) for b in boxes), key=lambda b: -b[2] * b[3])  # type: ignore[misc]


HAAR_COUNT_SIDE = 512  # px; other faces are counted on an image at most this large


def _other_faces(image: np.ndarray, best: np.ndarray) -> int:
    """Faces other than ``best`` (landmarks in ``image`` pixels) at least 40 % of its size.

    The mesh's own detector misses a smaller face beside a large one, so they are
    counted with a Haar cascade on a reduced image, ignoring boxes on the chosen face.
    """
    k = min(1.0, HAAR_COUNT_SIDE / max(image.shape[:2]))
    small = image if k == 1.0 else cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    face_h = _face_height(best) * k
    x0, y0 = best[:, :2].min(axis=0) * k
    x1, y1 = best[:, :2].max(axis=0) * k
    count = 0
    for x, y, w, h in _haar_boxes(small, max(20, int(0.4 * face_h)), neighbors=6):
        cx, cy = x + w / 2, y + h / 2
        if not (x0 <= cx <= x1 and y0 <= cy <= y1):
            count += 1
    return count


def _haar_crops(image: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Square crops (uint8, affine 2x3 crop->image) around Haar-detected faces, largest first."""
    crops = []
    for x, y, w, h in _haar_boxes(image)[:MAX_FACES]:
        side = 2.6 * max(w, h)
        cx, cy = x + w / 2, y + h / 2
        scale = 512 / side
        to_crop = np.array([[scale, 0, 256 - scale * cx], [0, scale, 256 - scale * cy]], np.float32)
        crop = cv2.warpAffine(
            image, to_crop, (512, 512), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        crops.append((crop, cv2.invertAffineTransform(to_crop)))
    return crops


def detect_landmarks(image: np.ndarray) -> Detection:
    """uint8 (H, W, 3) RGB -> landmarks of the largest face, in the image's pixel coordinates.

    Raises EnrollError when no face is found or the face is too small to animate.
    """
    height, width = image.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(height, width))
    small = (
        image
        if scale == 1.0
        else cv2.resize(
            image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
        )
    )
    faces = [p / np.float32(scale) for p in _run_mesh(small)]
    if not faces:
        # Small faces in wide shots escape the mesh's own short-range detector:
        # find them with a Haar cascade and run the mesh on an enlarged crop.
        for crop, back in _haar_crops(image):
            found = _run_mesh(crop)
            if found:
                pts = found[0].copy()
                xy1 = np.concatenate([pts[:, :2], np.ones((len(pts), 1), np.float32)], axis=1)
                pts[:, :2] = xy1 @ back.T
                pts[:, 2] *= float(back[0, 0])
                faces.append(pts)
                break
    if not faces:
        raise EnrollError(
            "no face found in the portrait; use a photo with one clearly visible, roughly frontal face"
        )
    faces.sort(key=_face_height, reverse=True)
    best = faces[0]
    n_faces = max(len(faces), 1 + _other_faces(image, best))
    if n_faces > 1:
        log.warning("%d faces found; using the largest", n_faces)
    face_h = _face_height(best)
    if face_h < MIN_FACE_HEIGHT:
        raise EnrollError(
            f"the face is too small: {face_h:.0f} px from forehead to chin; the minimum is {MIN_FACE_HEIGHT} px"
        )
    return Detection(points=best.astype(np.float32), others=n_faces - 1)
