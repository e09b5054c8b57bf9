"""What a closed eye looks like, measured on rendered frames from the pack's eye landmarks.

Shared by the eyelid tests on the built-in avatar and on the portrait set.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from headcast.models.avatar import landmarks as L

EYES = {
    "eyeBlinkLeft": (L.EYE_L_UPPER, L.EYE_L_LOWER, L.EYE_L_CORNERS),
    "eyeBlinkRight": (L.EYE_R_UPPER, L.EYE_R_LOWER, L.EYE_R_CORNERS),
}
# Rows of the opening above this share of the lid gap are measured: the lash line of a
# closed eye is drawn along the lower lid, and is meant to be dark.
MEASURED_GAP = 0.7
DARK_BELOW_SKIN = 50  # grey levels under the lid skin's median: iris, pupil, lashes
PALE = 0.6  # sclera: saturation at most this share of the lid skin's median
MIN_GAP_PX = 3.0  # an eye narrower than this at rest has no opening to measure


def _curve(lm: np.ndarray, idx: tuple[int, ...], x: np.ndarray) -> np.ndarray:
    px, py = lm[list(idx), 0], lm[list(idx), 1]
    order = np.argsort(px)
    return np.interp(x, px[order], py[order])


@dataclass(frozen=True)
class EyeRegions:
    columns: np.ndarray  # int (W,) frame columns of the eye's middle 80 %
    opening: np.ndarray  # bool (S, W) the opening at rest, less its lowest rows
    skin: np.ndarray  # bool (S, W) lid skin above the eye (0.5 to 1.2 lid gaps up), middle 60 %
    below: np.ndarray  # bool (S, W) skin below the eye (0.3 to 0.8 lid gaps down), middle 60 %
    lid: np.ndarray  # float (W,) upper lid y per column
    low: np.ndarray  # float (W,) lower lid y per column


def eye_regions(landmarks: np.ndarray, size: int, channel: str) -> EyeRegions | None:
    """Regions of one eye (``channel``: the eyeBlink channel that closes it)."""
    upper, lower, corners = EYES[channel]
    xs = landmarks[list(corners), 0]
    width = float(xs.max() - xs.min())
    centre = float(xs.mean())
    x = np.arange(int(np.ceil(centre - 0.4 * width)), int(np.floor(centre + 0.4 * width)) + 1)
    lid, low = _curve(landmarks, upper + corners, x), _curve(landmarks, lower + corners, x)
    gap_max = float((low - lid).max())
    if gap_max < MIN_GAP_PX:
        return None
    y = np.arange(size)[:, None]
    opening = (y >= lid + 1) & (y <= lid + MEASURED_GAP * (low - lid))
    mid = np.abs(x - centre) <= 0.3 * width
    skin = (y >= lid - 1.2 * gap_max) & (y <= lid - 0.5 * gap_max) & mid
    below = (y >= low + 0.3 * gap_max) & (y <= low + 0.8 * gap_max) & mid
    return EyeRegions(x, opening, skin, below, lid, low)


def _saturation(frame: np.ndarray, columns: np.ndarray) -> np.ndarray:
    rgb = frame[:, columns].astype(np.float64)
    return (rgb.max(-1) - rgb.min(-1)) / np.maximum(rgb.max(-1), 1.0)


def _luma(frame: np.ndarray, columns: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float64)[:, columns]


@dataclass(frozen=True)
class ClosedEye:
    brightest_over_skin: float  # grey levels the opening's brightest pixel is above the lid skin
    dark_share: float  # share of the opening darker than the lid skin by DARK_BELOW_SKIN
    # grey levels the opening's median is above the darker of the two skins' medians
    # (negative: a lid darker than the skin around the eye, a dark smear)
    median_over_skin: float
    # ...and above the brighter of the two (positive: a lid lighter than all skin near it)
    median_over_brighter: float


def closed_eye(portrait: np.ndarray, frame: np.ndarray, regions: EyeRegions) -> ClosedEye:
    """How much of an open eye still shows in ``frame`` (uint8 RGB, the eye meant shut):
    sclera brighter than the portrait's lid skin, iris and pupil darker than it, and how
    dark the closed lid is against the skin around the eye."""
    luma = _luma(portrait, regions.columns)
    skin = luma[regions.skin]
    inside = _luma(frame, regions.columns)[regions.opening]
    skins = (float(np.median(skin)), float(np.median(luma[regions.below])))
    # sclera is pale: less saturated than the lid skin (a lid lit brighter than the
    # shadowed crease above a deep-set eye is skin, not sclera)
    pale = _saturation(frame, regions.columns)[regions.opening] <= PALE * np.median(
        _saturation(portrait, regions.columns)[regions.skin]
    )
    return ClosedEye(
        brightest_over_skin=float(
            inside[pale].max() - np.percentile(skin, 95) if pale.any() else -255.0
        ),
        dark_share=float(np.mean(inside < np.median(skin) - DARK_BELOW_SKIN)),
        median_over_skin=float(np.median(inside) - min(skins)),
        median_over_brighter=float(np.median(inside) - max(skins)),
    )
