"""Face landmarks at enrollment: MediaPipe Face Mesh (478 points), Haar fallback for small faces.

mediapipe is an enrollment-only dependency (the ``enroll`` extra); serving an
enrolled avatar never imports it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from headcast.models.avatar.errors import EnrollError, NoFaceError, PoseError
from headcast.models.avatar.landmarks import (
    CHIN,
    EYE_L_CORNERS,
    EYE_R_CORNERS,
    FOREHEAD_TOP,
    NUM_LANDMARKS,
)

log = logging.getLogger(__name__)

DETECT_MAX_SIDE = 1024  # px; the mesh model sees at most this much
MIN_FACE_HEIGHT = 48  # px in the portrait, forehead-top to chin
MAX_FACES = 4
# The face enrolled must be this much larger than any other in the portrait.
DOMINANT_RATIO = 1.25
# Head turns the renderer can hold: beyond them the far cheek and the hidden side of
# the mouth are not in the photo, and every channel authored on the face goes wrong.
MAX_YAW_DEG = 45.0
MAX_PITCH_DEG = 35.0
PITCH_BIAS_DEG = 8.0  # a frontal face measures this (the hairline lies behind the chin)


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
    with (
        native_stderr_quiet(),
        mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=MAX_FACES,
            refine_landmarks=True,
            min_detection_confidence=0.5,
        ) as mesh,
    ):
        return _mesh_points(mesh.process(image), image.shape[1], image.shape[0])


def mesh_landmarks(image: np.ndarray) -> np.ndarray | None:
    """The largest face one face-mesh pass finds in uint8 (H, W, 3) RGB: float32 (478, 3)
    in image pixels, or None. No size, pose or second-face checks: for measuring a
    rendered frame, whose blurred margins can hold a blob that the enrollment's
    other-face search takes for a face."""
    faces = _run_mesh(image)
    return max(faces, key=_face_height) if faces else None


@contextlib.contextmanager
def native_stderr_quiet() -> Iterator[None]:
    """MediaPipe's C++ (absl, TensorFlow Lite) writes warnings to file descriptor 2 that
    say nothing to a user ("All log messages before absl::InitializeLog() ...", "Created
    TensorFlow Lite XNNPACK delegate"): point it at /dev/null meanwhile. Only on the
    main thread (the CLI): in a server, other threads' log lines share that descriptor."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def frontal_cascade() -> cv2.CascadeClassifier:
    """OpenCV's frontal-face Haar cascade (it fires on upright faces only)."""
    return cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")


def _haar_boxes(
    image: np.ndarray, min_side: int = 24, neighbors: int = 5
) -> list[tuple[int, int, int, int]]:
    """Frontal-face boxes (x, y, w, h) in ``image`` pixels, largest first."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    boxes = frontal_cascade().detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=neighbors, minSize=(min_side, min_side)
    )
    return sorted((tuple(int(v) for v in b) for b in boxes), key=lambda b: -b[2] * b[3])  # type: ignore[misc]


HAAR_COUNT_SIDE = 512  # px; other faces are counted on an image at most this large


def _other_faces(image: np.ndarray, best: np.ndarray) -> list[float]:
    """Sizes (face heights, ``image`` px) of faces other than ``best`` at least 40 % of its size.

    The mesh's own detector misses a smaller face beside a large one, so they are
    found with a Haar cascade on a reduced image, ignoring boxes on the chosen face
    (a frontal Haar box is about as wide as the forehead-to-chin height).
    """
    k = min(1.0, HAAR_COUNT_SIDE / max(image.shape[:2]))
    small = image if k == 1.0 else cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    face_h = _face_height(best) * k
    x0, y0 = best[:, :2].min(axis=0) * k
    x1, y1 = best[:, :2].max(axis=0) * k
    sizes: list[float] = []
    kept: list[tuple[int, int, int, int]] = []
    for x, y, w, h in _haar_boxes(small, max(20, int(0.4 * face_h)), neighbors=6):
        cx, cy = x + w / 2, y + h / 2
        if x0 <= cx <= x1 and y0 <= cy <= y1:
            continue
        if any(bx <= cx <= bx + bw and by <= cy <= by + bh for bx, by, bw, bh in kept):
            continue  # a second box on a face already counted (largest first)
        kept.append((x, y, w, h))
        size = w / k
        # Haar boxes include the odd badge or pattern: a face large enough to compete
        # with the chosen one counts only when the mesh finds a face there too.
        if size * DOMINANT_RATIO <= _face_height(best) or _mesh_confirms(image, x / k, y / k, size):
            sizes.append(size)
    return sizes


def _mesh_confirms(image: np.ndarray, x: float, y: float, side: float) -> bool:
    """Whether the face mesh finds a face in a crop around the box (x, y, side) in image px."""
    c = 2.6 * side
    scale = 256 / c
    cx, cy = x + side / 2, y + side / 2
    to_crop = np.array([[scale, 0, 128 - scale * cx], [0, scale, 128 - scale * cy]], np.float32)
    crop = cv2.warpAffine(image, to_crop, (256, 256), flags=cv2.INTER_AREA)
    return bool(_run_mesh(crop))


def head_angles(points: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in degrees of a face from its 3-D landmarks float (478, 3): 0 facing the
    camera; the normal of the plane spanned by the eye line and the forehead-chin line."""
    p = points.astype(np.float64)
    across = p[list(EYE_L_CORNERS)].mean(axis=0) - p[list(EYE_R_CORNERS)].mean(axis=0)
    down = p[CHIN] - p[FOREHEAD_TOP]
    n = np.cross(across, down)
    yaw = float(np.degrees(np.arctan2(n[0], n[2])))
    pitch = float(np.degrees(np.arctan2(n[1], n[2]))) - PITCH_BIAS_DEG
    return yaw, pitch


def check_pose(points: np.ndarray) -> None:
    """EnrollError when the head is turned or tilted past what the renderer can hold."""
    yaw, pitch = head_angles(points)
    if abs(yaw) > MAX_YAW_DEG:
        raise PoseError(
            f"the head is turned {abs(yaw):.0f} degrees to the side (at most {MAX_YAW_DEG:.0f}); "
            "use a photo where the face looks towards the camera"
        )
    if abs(pitch) > MAX_PITCH_DEG:
        raise PoseError(
            f"the head is tilted {abs(pitch):.0f} degrees {'down' if pitch > 0 else 'up'} "
            f"(at most {MAX_PITCH_DEG:.0f}); use a photo where the face looks towards the camera"
        )


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


def _add_face(faces: list[np.ndarray], pts: np.ndarray) -> None:
    """Add ``pts`` unless it is a face already in ``faces`` (then keep the larger fit: a crop
    that cuts a face gives a smaller, wrong one)."""
    centre = pts[:, :2].mean(axis=0)
    for i, other in enumerate(faces):
        lo, hi = other[:, :2].min(axis=0), other[:, :2].max(axis=0)
        if np.all(centre >= lo) and np.all(centre <= hi):
            if _face_height(pts) > _face_height(other):
                faces[i] = pts
            return
    faces.append(pts)


def detect_landmarks(image: np.ndarray, small_faces: bool = True) -> Detection:
    """uint8 (H, W, 3) RGB -> landmarks of the largest face, in the image's pixel coordinates.

    Raises EnrollError when no face is found or the face is too small to animate.
    ``small_faces=False`` skips the slower search for faces the mesh's detector misses.
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
    if not faces and small_faces:
        # Small faces in wide shots escape the mesh's own short-range detector:
        # find them with a Haar cascade and run the mesh on an enlarged crop.
        for crop, back in _haar_crops(image):
            found = _run_mesh(crop)
            if found:
                pts = found[0].copy()
                xy1 = np.concatenate([pts[:, :2], np.ones((len(pts), 1), np.float32)], axis=1)
                pts[:, :2] = xy1 @ back.T
                pts[:, 2] *= float(back[0, 0])
                _add_face(faces, pts)
    if not faces:
        raise NoFaceError(
            "no face found in the portrait; use a photo with one clearly visible, roughly frontal face"
        )
    faces.sort(key=_face_height, reverse=True)
    best = faces[0]
    face_h = _face_height(best)
    if face_h < MIN_FACE_HEIGHT:
        raise EnrollError(
            f"the face is too small: {face_h:.0f} px from forehead to chin, the minimum is "
            f"{MIN_FACE_HEIGHT} px; use a photo in which the face itself is larger (a sharper, "
            "higher-resolution original: cropping does not add pixels to the face)"
        )
    others = [_face_height(p) for p in faces[1:]]
    haar = _other_faces(image, best)
    n_faces = 1 + max(len(others), len(haar))
    rivals = [size for size in (others or haar) if size * DOMINANT_RATIO > face_h]
    if rivals:
        raise EnrollError(
            f"{1 + len(rivals)} faces of about the same size in the portrait; "
            "crop the photo to the one face to animate"
        )
    if n_faces > 1:
        log.warning("%d faces found; using the largest", n_faces)
    check_pose(best)
    return Detection(points=best.astype(np.float32), others=n_faces - 1)
