"""Full-portrait output: paste each rendered head frame back into the original portrait.

The avatar pack keeps the portrait and ``portrait_matrix`` (2, 3), the affine that took
portrait pixels to head-frame pixels at enrollment. Its inverse puts a rendered frame
back. Only pixels the renderer changed are pasted: a mask of where the frame differs from
the aligned (unmoved) head frame, grown and feathered so the seam is invisible, and
faded to zero at the frame border so a head turn never shows the frame's edge. Outside
the mask both images agree anyway (the aligned frame is a resampling of the portrait),
so per-frame masks do not flicker.
"""

from __future__ import annotations

import cv2
import numpy as np

from headcast.models.avatar.pack import AvatarPack

#: a pixel counts as changed when some channel differs by more than this (0..255)
DIFF_THRESHOLD = 4
#: growth of the changed region and width of its feather, as fractions of the frame side
GROW_FRACTION = 0.02
FEATHER_FRACTION = 0.03
#: the longest side of the output; larger portraits are scaled down (pixels)
MAX_SIDE = 1920


class PortraitPaster:
    """Head frames uint8 (S, S, 3) RGB -> full portraits uint8 (H, W, 3) RGB, H and W even.

    Thread-safe: ``paste`` only reads the shared arrays.
    """

    def __init__(self, pack: AvatarPack, rest: np.ndarray, max_side: int = MAX_SIDE) -> None:
        """``rest``: uint8 (S, S, 3), the renderer's frame at all-zero coefficients."""
        if pack.portrait is None:
            raise ValueError("this avatar pack keeps no portrait; re-enroll it to get one")
        portrait = pack.portrait
        size = int(rest.shape[0])
        # portrait_matrix maps portrait pixels to frames of the pack's size; scale to ``size``.
        m = np.asarray(pack.arrays["portrait_matrix"], np.float64) * (size / pack.size)
        h, w = portrait.shape[:2]
        scale = min(1.0, max_side / max(h, w))
        if scale < 1.0:
            portrait = cv2.resize(
                portrait, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
            )
            m = m.copy()
            m[:, :2] /= scale
        h, w = (portrait.shape[0] // 2) * 2, (portrait.shape[1] // 2) * 2
        self.portrait = np.ascontiguousarray(portrait[:h, :w])
        self.size = size
        self.shape = (h, w, 3)
        # The frame's footprint in the portrait: the ROI every paste works in.
        inv = cv2.invertAffineTransform(m)
        corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
        pts = corners @ inv[:, :2].T + inv[:, 2]
        x0, y0 = np.floor(pts.min(0)).astype(int)
        x1, y1 = np.ceil(pts.max(0)).astype(int)
        self.x0, self.y0 = max(0, int(x0)), max(0, int(y0))
        self.x1, self.y1 = min(w, int(x1)), min(h, int(y1))
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise ValueError("the head frame lies outside the portrait")
        # Matrix from ROI pixels to frame pixels (the warp's inverse map).
        self.matrix = m.copy()
        self.matrix[:, 2] += m[:, :2] @ np.array([self.x0, self.y0], np.float64)
        self.aligned = np.ascontiguousarray(rest)
        self._grow = max(1, round(GROW_FRACTION * size)) * 2 + 1
        self._feather = max(1, round(FEATHER_FRACTION * size)) * 2 + 1
        ramp = np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.float32)
        ramp = np.clip(ramp / max(1.0, FEATHER_FRACTION * size), 0.0, 1.0)
        self._border = np.minimum(ramp[:, None], ramp[None, :])

    def mask(self, frame: np.ndarray) -> np.ndarray:
        """uint8 (S, S, 3) frame -> float32 (S, S) 0..1 paste weight."""
        diff = cv2.absdiff(frame, self.aligned).max(axis=2)
        changed = (diff > DIFF_THRESHOLD).astype(np.uint8)
        changed = cv2.dilate(changed, np.ones((self._grow, self._grow), np.uint8))
        soft = cv2.GaussianBlur(changed.astype(np.float32), (self._feather, self._feather), 0)
        return np.minimum(soft * 2.0, 1.0) * self._border

    def paste(self, frame: np.ndarray) -> np.ndarray:
        """uint8 (S, S, 3) RGB head frame -> uint8 (H, W, 3) RGB portrait with it pasted."""
        out = self.portrait.copy()
        roi = out[self.y0 : self.y1, self.x0 : self.x1]
        dsize = (self.x1 - self.x0, self.y1 - self.y0)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        head = cv2.warpAffine(
            frame, self.matrix, dsize, flags=flags, borderMode=cv2.BORDER_REPLICATE
        )
        alpha = cv2.warpAffine(self.mask(frame), self.matrix, dsize, flags=flags)[..., None]
        blended = roi.astype(np.float32) + alpha * (head.astype(np.float32) - roi)
        roi[...] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        return out
