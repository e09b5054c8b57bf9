"""Pure-numpy reference of the ``warp`` renderer: exact bilinear sampling, float64.

Slow (seconds per frame); it exists so the fast path and the ONNX graph can be
tested against the definition in ``warp_math``.
"""

from __future__ import annotations

import numpy as np

from headcast.models.avatar.pack import AvatarPack
from headcast.models.render import eyelid, lipfill
from headcast.models.render import warp_math as wm


def render_reference(pack: AvatarPack, coeffs: np.ndarray) -> np.ndarray:
    """float32 (K,) -> uint8 (S, S, 3) RGB."""
    c = wm.prepare(coeffs)
    size, arrays = pack.size, pack.arrays
    forward = wm.forward_field(arrays, c, size)
    back = wm.inverse_displacement(forward, size, wm.bilinear)
    g = back.shape[-1]
    pix = np.arange(size, dtype=np.float64)
    gy, gx = np.meshgrid((pix + 0.5) * g / size - 0.5, (pix + 0.5) * g / size - 0.5, indexing="ij")
    up = wm.bilinear(back.astype(np.float64), gx, gy)
    px, py = np.meshgrid(pix, pix)
    src_x, src_y = px - up[0], py - up[1]
    m = wm.mouth_state(arrays, c, size)
    img = pack.image.astype(np.float64)
    fill = wm.fill_weight(m, float(arrays["mouth_shape"][0]))
    if fill > 0:  # lips drawn over the portrait's own teeth (lipfill)
        img = img + fill * lipfill.full_frame(
            lipfill.lip_fill(pack.image, arrays["landmarks"]), size
        )
    img = np.moveaxis(img, -1, 0)
    out = wm.bilinear(img, src_x, src_y)
    left, right = wm.blinks(c)
    if left > 0 or right > 0:
        layer = np.moveaxis(eyelid.lid_layer(pack.image, arrays["landmarks"]), -1, 0)
        sampled = wm.bilinear(layer.astype(np.float64), src_x, src_y)
        out = eyelid.blend(out, sampled, left, right)
    if m.alpha > 0:
        color, cover = wm.interior(px, py, m, arrays, wm.bilinear)
        out = out * (1 - cover) + color * cover
    weight = wm.seam_weight(m, float(arrays["mouth_shape"][0]))
    if weight > 0:
        a = wm.seam(px, py, m, weight)
        out = out * (1 - a) + wm.seam_color(arrays)[:, None, None] * a
    return np.clip(np.rint(np.moveaxis(out, 0, -1)), 0, 255).astype(np.uint8)
