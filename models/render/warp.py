"""The ``warp`` renderer, CPU fast path: flow in numpy, warps with ``cv2.remap``.

cv2 releases the GIL, so several sessions render in parallel threads.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from headcast.models.avatar.pack import AvatarPack, load_pack
from headcast.models.render import eyelid, lipfill
from headcast.models.render import warp_math as wm

BBOX_MARGIN_PX = 3
# half-width of the outline band where coverage is computed exactly (> EDGE_SOFT_PX +
# raster error)
BAND_PX = 1
SHIFT = 4  # fractional bits of the ring's vertices handed to OpenCV's rasteriser


def cv2_sampler(field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``warp_math.Sampler`` with cv2.remap: field (C, H, W) at x, y (...) -> (C, ...)."""
    shape = x.shape
    rows = shape if x.ndim == 2 else (1, x.size)  # cv2.remap wants 2-D maps
    mx = np.ascontiguousarray(x, np.float32).reshape(rows)
    my = np.ascontiguousarray(y, np.float32).reshape(rows)
    src = np.ascontiguousarray(np.moveaxis(field, 0, -1), dtype=np.float32)
    out = cv2.remap(src, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # cv2 drops the channel axis of a one-channel image; put it back.
    return np.moveaxis(out.reshape(*rows, -1), -1, 0).reshape(field.shape[0], *shape)


class WarpRenderer:
    """Renderer protocol implementation (see ``models.render.base.Renderer``)."""

    backend = "warp"

    def __init__(self, pack: AvatarPack) -> None:
        self.pack = pack
        self.size = pack.size
        self.arrays = pack.arrays
        self.image = np.ascontiguousarray(pack.image)
        self._identity = np.ascontiguousarray(np.moveaxis(wm.identity_map(self.size), 0, -1))
        a = pack.arrays
        self._lids = eyelid.lid_layer(self.image, a["landmarks"])
        self._lid_boxes = eyelid.layer_boxes(self._lids)
        self._fill = lipfill.lip_fill(self.image, a["landmarks"])
        self._filled: tuple[float, np.ndarray] | None = None
        self._rest_gap = float(a["mouth_shape"][0])
        flow_cells = (
            (np.abs(a["bases"]).sum(axis=(0, 1)) > 0)
            | (np.abs(a["seal"]).sum(axis=0) > 0)
            | (np.abs(a["relax"]).sum(axis=(0, 1)) > 0)
        )
        # The lids are drawn inside the warped box, so it holds them even unmoved.
        cell = self.size // flow_cells.shape[0]
        for lx0, ly0, lx1, ly1 in self._lid_boxes:
            flow_cells[ly0 // cell : -(-ly1 // cell), lx0 // cell : -(-lx1 // cell)] |= lx1 > lx0
        self._box_identity: dict[tuple[int, int, int, int], np.ndarray] = {}
        self._box_flow = self._pixel_box(flow_cells)
        self._box_pose = self._pixel_box(flow_cells | (a["pose_weight"] > 0))

    def _pixel_box(self, cells: np.ndarray) -> tuple[int, int, int, int]:
        """Frame-pixel box (x0, y0, x1, y1) outside which the displacement is exactly zero.

        Bilinear upsampling spreads a grid cell over its neighbours' pixels, so the
        box is grown by two cells; beyond it the map is the identity and the output
        is the portrait itself, so only the box is warped.
        """
        if not cells.any():
            return (0, 0, 0, 0)
        ys, xs = np.nonzero(cells)
        g = cells.shape[0]
        cell = self.size // g
        x0, y0 = max(0, xs.min() - 2) * cell, max(0, ys.min() - 2) * cell
        x1, y1 = min(g, xs.max() + 3) * cell, min(g, ys.max() + 3) * cell
        return (int(x0), int(y0), int(x1), int(y1))

    @classmethod
    def from_dir(cls, path: str | Path | None = None) -> WarpRenderer:
        return cls(load_pack(path))

    def backward_field(self, c: np.ndarray) -> np.ndarray:
        """Prepared coefficients (K,) -> float32 (G, G, 2) backward displacement on the grid."""
        forward = wm.forward_field(self.arrays, c, self.size)
        back = wm.inverse_displacement(forward, self.size, cv2_sampler)
        return np.ascontiguousarray(np.moveaxis(back, 0, -1))

    def render(self, coeffs: np.ndarray) -> np.ndarray:
        """float32 (K,) -> uint8 (S, S, 3) RGB."""
        c = wm.prepare(coeffs)
        if not np.any(c):
            return self.image.copy()
        box = self._box_pose if np.any(c[wm.YAW :]) else self._box_flow
        out = self.image.copy()
        m = wm.mouth_state(self.arrays, c, self.size)
        x0, y0, x1, y1 = box
        if x1 > x0 and y1 > y0:
            mapping = self._box_map(c, box)
            out[y0:y1, x0:x1] = cv2.remap(
                self._source(m), mapping, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
            self._draw_lids(out[y0:y1, x0:x1], mapping, c)
        self._draw_mouth(out, m)
        return out

    def _source(self, m: wm.MouthState) -> np.ndarray:
        """The portrait to warp: the lip fill (``lipfill``) mixed in as the lips meet."""
        weight = 0.0 if self._fill is None else wm.fill_weight(m, self._rest_gap)
        if self._fill is None or weight <= 0.0:
            return self.image
        cached = self._filled  # (weight, image): sealed lips hold one weight for frames
        if cached is not None and cached[0] == weight:
            return cached[1]
        (x0, y0, x1, y1), delta = self._fill
        src = self.image.copy()
        mixed = self.image[y0:y1, x0:x1] + np.float32(weight) * delta
        src[y0:y1, x0:x1] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
        self._filled = (weight, src)
        return src

    def _box_map(self, c: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """float32 (y1 - y0, x1 - x0, 2) sampling map of the box only.

        The box edges lie on grid-cell boundaries, so upsampling just the grid cells
        under the box by the cell size gives the very values a whole-frame upsample
        has there (half-pixel centres line up; the clamped edge cells are zero).
        """
        x0, y0, x1, y1 = box
        back = self.backward_field(c)
        cell = self.size // back.shape[0]
        sub = np.ascontiguousarray(back[y0 // cell : y1 // cell, x0 // cell : x1 // cell])
        up = cv2.resize(sub, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        ident = self._box_identity.get(box)
        if ident is None:
            ident = self._box_identity[box] = np.ascontiguousarray(self._identity[y0:y1, x0:x1])
        return np.subtract(ident, up, out=up)

    def render_batch(self, coeffs: np.ndarray) -> np.ndarray:
        """float32 (B, K) -> uint8 (B, S, S, 3)."""
        batch = np.asarray(coeffs, np.float32)
        return (
            np.stack([self.render(row) for row in batch])
            if len(batch)
            else np.zeros((0, self.size, self.size, 3), np.uint8)
        )

    def _draw_lids(self, out: np.ndarray, mapping: np.ndarray, c: np.ndarray) -> None:
        """``eyelid.blend`` on the pixels of the box ``out`` whose source lands on a lid."""
        left, right = wm.blinks(c)
        sx, sy = mapping[..., 0], mapping[..., 1]
        for blink, (lx0, ly0, lx1, ly1) in zip((left, right), self._lid_boxes, strict=True):
            if blink <= 0.0 or lx1 <= lx0:
                continue
            hit = (sx >= lx0) & (sx <= lx1 - 1) & (sy >= ly0) & (sy <= ly1 - 1)
            rows, cols = np.flatnonzero(hit.any(axis=1)), np.flatnonzero(hit.any(axis=0))
            if len(rows) == 0:
                continue
            r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            sub = np.ascontiguousarray(mapping[r0:r1, c0:c1])
            sampled = cv2.remap(
                self._lids, sub, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
            region = out[r0:r1, c0:c1]
            warped = np.moveaxis(region.astype(np.float32), -1, 0)
            lids = eyelid.blend(warped, np.moveaxis(sampled, -1, 0), left, right)
            region[:] = np.clip(np.rint(np.moveaxis(lids, 0, -1)), 0, 255).astype(np.uint8)

    def _draw_mouth(self, out: np.ndarray, m: wm.MouthState) -> None:
        self._draw_seam(out, m)
        if m.alpha <= 0.0:
            return
        lo = np.floor(m.ring.min(axis=0)).astype(int) - BBOX_MARGIN_PX
        hi = np.ceil(m.ring.max(axis=0)).astype(int) + BBOX_MARGIN_PX + 1
        x0, y0 = np.clip(lo, 0, self.size)
        x1, y1 = np.clip(hi, 0, self.size)
        if x1 <= x0 or y1 <= y0:
            return
        # Exact signed distances only in a band around the outline; elsewhere the
        # coverage is exactly 0 or 1, so a rasterised inside test gives the same result.
        poly = _fixed_point(m.ring, x0, y0)
        inside = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(inside, [poly], 1, lineType=cv2.LINE_8, shift=SHIFT)
        band = np.zeros_like(inside)
        cv2.polylines(
            band, [poly], True, 1, thickness=2 * BAND_PX + 1, lineType=cv2.LINE_8, shift=SHIFT
        )
        ys, xs = np.nonzero(band | inside)
        if len(ys) == 0:
            return
        px, py = xs.astype(np.float64) + x0, ys.astype(np.float64) + y0
        color, _ = wm.interior(px, py, m, self.arrays, cv2_sampler, with_cover=False)
        on_band = band[ys, xs] > 0
        cover = inside[ys, xs].astype(np.float64)
        band_x = px[on_band].astype(np.float32)
        band_y = py[on_band].astype(np.float32)
        cover[on_band] = wm.coverage(band_x, band_y, m)
        cover *= m.alpha
        sel = cover > 0
        ys, xs, cover, color = ys[sel] + y0, xs[sel] + x0, cover[sel, None], color[:, sel].T
        blended = out[ys, xs].astype(np.float64) * (1 - cover) + color * cover
        out[ys, xs] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)

    def _draw_seam(self, out: np.ndarray, m: wm.MouthState) -> None:
        """The lip seam (``warp_math.seam``), drawn in the ring's bounding box only."""
        weight = wm.seam_weight(m, self._rest_gap)
        if weight <= 0.0:
            return
        pad = int(np.ceil(wm.SEAM_HALF_PX + 2 * wm.EDGE_SOFT_PX)) + 1
        x0, y0 = np.clip(np.floor(m.ring.min(axis=0)).astype(int) - pad, 0, self.size)
        x1, y1 = np.clip(np.ceil(m.ring.max(axis=0)).astype(int) + pad + 1, 0, self.size)
        if x1 <= x0 or y1 <= y0:
            return
        # Only pixels near the ring can be on the seam: a band drawn along it, as wide
        # as the seam and its soft edge, picks them; the rest of the box keeps alpha 0.
        band = np.zeros((y1 - y0, x1 - x0), np.uint8)
        reach = int(np.ceil(wm.SEAM_HALF_PX + wm.EDGE_SOFT_PX)) + 1
        poly = _fixed_point(m.ring, x0, y0)
        cv2.polylines(band, [poly], True, 1, thickness=2 * reach + 1, shift=SHIFT)
        ys, xs = np.nonzero(band)
        if len(ys) == 0:
            return
        a = wm.seam(xs.astype(np.float64) + x0, ys.astype(np.float64) + y0, m, weight)
        ys, xs, a = ys[a > 0] + y0, xs[a > 0] + x0, a[a > 0, None]
        blended = out[ys, xs].astype(np.float64) * (1 - a) + wm.seam_color(self.arrays) * a
        out[ys, xs] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def _fixed_point(ring: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """float (N, 2) ring in frame px -> int32 (N, 2) vertices relative to (x0, y0), with
    SHIFT fractional bits (OpenCV's ``shift``)."""
    return np.round((ring - [x0, y0]) * (1 << SHIFT)).astype(np.int32)
