"""Resample an avatar pack to another head-frame size (e.g. the 512 default to 256)."""

from __future__ import annotations

import cv2
import numpy as np

from headcast.models.avatar.pack import AvatarPack

POSITION_ARRAYS = ("landmarks", "lip_points", "pivot")  # x, y are pixel positions (z: a length)
# pixel lengths
LENGTH_ARRAYS = (
    "bases",
    "lip_bases",
    "lip_depth",
    "depth",
    "seal",
    "seal_lip",
    "relax",
    "relax_lip",
)
# (..., G, G) fields on the flow grid
GRID_ARRAYS = ("bases", "depth", "pose_weight", "seal", "relax")
CELL_PX = 4  # a flow-grid cell covers this many frame pixels at the default 512 / 128


def _pool(field: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks of the last two axes (half-pixel grids stay aligned)."""
    *lead, h, w = field.shape
    blocks = field.reshape(*lead, h // factor, factor, w // factor, factor)
    return blocks.mean(axis=(-3, -1)).astype(field.dtype)


def resize_pack(pack: AvatarPack, size: int) -> AvatarPack:
    """Same avatar at ``size``: image resampled, every pixel-valued array rescaled.

    Texture and weight arrays are size-free. Smaller frames also get a coarser flow
    grid, so a grid cell keeps covering about CELL_PX pixels.
    """
    k = size / pack.size
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC
    image = cv2.resize(pack.image, (size, size), interpolation=interp)
    arrays = dict(pack.arrays)
    for name in LENGTH_ARRAYS:
        arrays[name] = (pack.arrays[name] * k).astype(np.float32)
    for name in POSITION_ARRAYS:
        scaled = pack.arrays[name] * k
        # Pixel centres scale about -0.5; a trailing depth coordinate is a plain length.
        scaled[..., :2] = (pack.arrays[name][..., :2] + 0.5) * k - 0.5
        arrays[name] = scaled.astype(np.float32)
    # Keep a flow-grid cell at about CELL_PX frame pixels: a 256 frame needs only a
    # 64 x 64 grid, a quarter of the flow arithmetic per frame.
    grid = pack.grid
    factor = 1
    while grid // (factor * 2) * CELL_PX >= size and grid % (factor * 2) == 0:
        factor *= 2
    if factor > 1:
        for name in GRID_ARRAYS:
            arrays[name] = _pool(arrays[name], factor)
    shape = arrays["mouth_shape"].copy()
    shape[0] *= k
    arrays["mouth_shape"] = shape
    scale = np.diag([k, k, 1.0])[:2, :2]
    mat = pack.arrays["portrait_matrix"]
    arrays["portrait_matrix"] = np.concatenate(
        [scale @ mat[:, :2], (mat[:, 2:] + 0.5) * k - 0.5], axis=1
    )
    return AvatarPack(
        image=image, arrays=arrays, meta=dict(pack.meta, size=size), portrait=pack.portrait
    )
