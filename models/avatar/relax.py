"""The portrait's own smile, measured at enrollment, and the motion that relaxes it.

A portrait photographed smiling would otherwise grin through every sentence. Enrollment
measures how far each mouth corner is raised above the middle of the lip slit and
authors, per side, a motion that brings it down to a neutral mouth's height and
narrows the mouth a little; the lip seal then closes the lips part of the way over
teeth the smile showed (:func:`relax_seal`).
The renderer weights it by the negative part of ``mouthSmileLeft`` / ``mouthSmileRight``
(-1: fully relaxed); the motion mixer sends those values for the portrait's smile when
the emotion asks for less smile than the photo shows (:mod:`models.mixer`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from headcast.models.avatar import landmarks as L
from headcast.models.avatar.face_geometry import FaceGeometry, slit_y
from headcast.models.avatar.pack import ARRAYS_FILE, DEFAULT_AVATAR_DIR, AvatarPack, read_meta
from headcast.models.render.warp_math import SEAM_OPEN_PX

# Corner height above the middle of the lip slit, in mouth widths: a neutral mouth's,
# and how much more counts as a full smile (measured on the portrait set: neutral faces
# 0.00-0.06, broad smiles 0.14-0.19).
NEUTRAL_LIFT = 0.04
FULL_SMILE_LIFT = 0.12
RELAX_GAIN = 1.3  # the landmark detector sees about half the lift removed at 1.0
RELAX_NARROW = 0.04  # the corners move in by this share of the mouth width at a full smile
RELAX_SEAL = 0.6  # share of the rest opening the lips close over at a full smile
REACH = 0.45  # the motion fades out this many mouth widths above and below the slit


def corner_lifts(points: np.ndarray) -> tuple[float, float]:
    """(left, right): each mouth corner's height above the middle of the lip slit, in
    mouth widths (positive: raised, as in a smile)."""
    g = FaceGeometry.of(points)
    lift = [
        float(g.mouth_center[1] - g.xy[k, 1]) / g.mouth_width
        for k in (L.MOUTH_CORNER_L, L.MOUTH_CORNER_R)
    ]
    return lift[0], lift[1]


def smile_share(lift: float) -> float:
    """0..1: how much of a full smile a corner lift (mouth widths) is."""
    return float(np.clip((lift - NEUTRAL_LIFT) / FULL_SMILE_LIFT, 0.0, 1.0))


def portrait_smile(points: np.ndarray) -> dict[str, float]:
    """The smile the portrait shows, ``{mouthSmileLeft: 0..1, mouthSmileRight: 0..1}``."""
    left, right = corner_lifts(points)
    return {"mouthSmileLeft": smile_share(left), "mouthSmileRight": smile_share(right)}


def pack_smile(pack: AvatarPack | None) -> dict[str, float] | None:
    """The smile a pack's portrait shows (its ``smile``), for the motion mixer; None
    without a pack, or for a pack enrolled before the smile was measured."""
    return None if pack is None else pack.meta.get("smile")


def folder_smile(avatar: str | Path | None) -> dict[str, float] | None:
    """The smile of a pack folder's portrait (None: the built-in avatar), from its
    metadata alone, for a motion mixer made before (or apart from) the renderer."""
    meta = read_meta(DEFAULT_AVATAR_DIR if avatar is None else Path(avatar))
    smile = meta.get("smile")
    return dict(smile) if isinstance(smile, dict) else None


def pack_lips_apart(pack: AvatarPack | None) -> bool:
    """Whether a pack's portrait has its lips apart at rest (its inner lips further apart
    than the renderer's seam width), for the motion mixer's rest seal; False without a
    pack."""
    return pack is not None and lips_apart(pack.arrays["mouth_shape"])


def folder_lips_apart(avatar: str | Path | None) -> bool:
    """:func:`pack_lips_apart` from a pack folder (None: the built-in avatar), reading
    only the mouth's shape."""
    root = DEFAULT_AVATAR_DIR if avatar is None else Path(avatar)
    try:
        with np.load(root / ARRAYS_FILE, allow_pickle=False) as npz:
            return lips_apart(npz["mouth_shape"])
    except (OSError, KeyError, ValueError):  # not a pack folder: nothing to seal
        return False


def lips_apart(mouth_shape: np.ndarray) -> bool:
    """float32 (2,) ``mouth_shape`` (rest gap px, upper-lip curve) -> lips apart at rest."""
    return float(mouth_shape[0]) > SEAM_OPEN_PX


def relax(points: np.ndarray, left: bool) -> np.ndarray:
    """float (478, 2): the motion that relaxes one side's smile completely (zero where
    that corner is not raised). The lip line unbends: the corner comes down by its lift
    above a neutral one, the middle of the mouth stays; the cheek beside the corner
    follows, the motion fading out past the corner and away from the slit."""
    g = FaceGeometry.of(points)
    lift = corner_lifts(points)[0 if left else 1]
    share = smile_share(lift)
    drop = RELAX_GAIN * max(lift - NEUTRAL_LIFT, 0.0) * g.mouth_width
    d = np.zeros_like(g.xy)
    if drop <= 0.0:
        return d
    x, y = g.xy[:, 0], g.xy[:, 1]
    u = (x - g.mouth_center[0]) / (0.5 * g.mouth_width)
    u = u if left else -u
    along = np.where(u <= 1.0, np.clip(u, 0.0, 1.0) ** 1.5, np.exp(-(((u - 1.0) / 0.6) ** 2)))
    reach = REACH * g.mouth_width
    across = np.exp(-0.5 * ((y - slit_y(g, x)) / reach) ** 2)
    w = along * across
    d[:, 1] = drop * w
    d[:, 0] = (-1.0 if left else 1.0) * RELAX_NARROW * share * g.mouth_width * w
    return d


def relax_seal(points: np.ndarray) -> np.ndarray:
    """float32 (2,): the lip seal's weight when the [left, right] smile is fully relaxed
    (RELAX_SEAL of the rest opening at a full smile). The renderer takes the larger of
    this and the seal a closure asks for, so a bilabial on a relaxed smile closes the
    lips once, not past each other."""
    left, right = corner_lifts(points)
    return np.array([RELAX_SEAL * smile_share(left), RELAX_SEAL * smile_share(right)], np.float32)
