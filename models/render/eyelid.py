"""Eyelids of the ``warp`` renderer: a closing lid drawn from the portrait's own lid skin.

A blink moves nothing outside the eye's opening (glasses rims, brows and make-up
above the lid stay put). Instead a *lid layer* lies over each eye in the portrait's
frame, warped with the portrait by the same backward map (so it follows the head
pose and every expression) and revealed from the top down as the blink grows:

* colour: the skin around the eye (a band above the upper lid and one below the lower
  lid, each weighted by how close its tone is to the face's), smoothed across the eye,
  shaded towards the lash line and the corners, with the fine texture of the cheek
  below the eye over it (see ``_lid_skin``). The layer fades in over its top rows, so
  it meets the portrait above without a seam;
* ``V``: where the closing edge passes each pixel, as a share of the lid gap in
  its column (0 at the upper lid margin, 1 at the lower one; ``OUTSIDE`` away from
  the eyes). The layer starts ``LASH_BAND`` lid gaps above the margin (of its column,
  but at least ``CORNER_BAND`` of the eye's largest gap) so the closing lid also
  covers the portrait's own upper lashes and liner;
* ``GAP``: the lid gap of the column in pixels, plus ``OVERLAP_PX`` (for a soft edge
  in pixels);
* ``SIDE``: 1 on the subject's left eye, 0 on the right;
* ``MASK``: 1 where the layer may cover (fading in over its top ``FEATHER`` lid
  gaps), 0 elsewhere. ``V`` runs on smoothly past the mask's edge, so a sample
  between a lid pixel and its neighbour outside never reads as the closing edge (a
  dark lash dot).

At blink ``b`` the edge sits at ``b * REACH`` (past the lower margin at ``b = 1``,
so no sclera or iris shows); a soft dark band along the edge is the lash line.
``blend`` is the definition; the CPU fast path, the numpy reference and the ONNX
graph apply it to the layer sampled at the same source points as the portrait.
"""

from __future__ import annotations

import cv2
import numpy as np

from headcast.models.avatar import landmarks as L
from headcast.models.avatar.mouth import LUMA, face_luma

LAYER_CHANNELS = 7  # R, G, B (0..255), V, GAP (px), SIDE, MASK
V, GAP, SIDE, MASK = 3, 4, 5, 6
OUTSIDE = 10.0  # V away from the eyes (far past any blink's edge)
REACH = 1.08  # edge position (lid gaps below the upper margin) at eyeBlink = 1
OVERLAP_PX = 1.5  # at 512 px: a closed lid reaches this far past the lower lid landmarks
LASH_BAND = 0.45  # the layer starts this many lid gaps (of its column) above the upper margin
EDGE_SOFT_PX = 0.75  # half-width of the anti-aliased closing edge
FADE_IN = 0.1  # the layer fades in over blink 0..FADE_IN (nothing changes at rest)
LASH_WIDTH = 0.25  # the lash line spans this many lid gaps above the edge
LASH_DARK = 0.65  # how much the lash line darkens the lid skin at the edge
LID_SHADOW = 0.1  # the closed lid darkens by this share towards the lash line (it curves away)
FEATHER = 0.4  # lid gaps below the layer's top over which it fades in
CORNER_BAND = 0.6  # share of the eye's largest lid gap the band over the lashes keeps
CORNER_SHADOW = 0.08  # the closed lid darkens by this share towards the corners
SKIN_ABOVE = (0.5, 1.2)  # lid skin is read this many lid gaps above the upper margin...
SKIN_BELOW = (0.3, 0.8)  # ...and the lower lid's skin this many below the lower margin
SKIN_TONE_LEVELS = 12.0  # a band this many grey levels off the face's luma counts half
SKIN_PERCENTILE = 75  # per column, the skin pixel at this luma percentile (not brow, not crease)
TEXTURE_FROM = 1.0  # the lid's texture is read this many lid gaps below the lower margin
DETAIL_PX = (0.6, 2.5)  # at 512 px: texture between these scales is kept from there...
DETAIL_GAIN = 0.6  # ...at this strength, over the smooth lid colour
SKIN_SPREAD = 0.2  # the lid colour is smoothed across this share of the eye's width

EYES = (  # (upper lid, lower lid, corners, SIDE): subject's left first, as eyeBlinkLeft
    (L.EYE_L_UPPER, L.EYE_L_LOWER, L.EYE_L_CORNERS, 1.0),
    (L.EYE_R_UPPER, L.EYE_R_LOWER, L.EYE_R_CORNERS, 0.0),
)


def _curve(points: np.ndarray, idx: tuple[int, ...], x: np.ndarray) -> np.ndarray:
    px, py = points[list(idx), 0], points[list(idx), 1]
    order = np.argsort(px)
    return np.interp(x, px[order], py[order])


def _band_colour(
    img: np.ndarray,
    luma: np.ndarray,
    x: np.ndarray,
    y_from: np.ndarray,
    y_to: np.ndarray,
) -> tuple[np.ndarray, float]:
    """Per column ``x``, the colour of the pixel at SKIN_PERCENTILE of luma between rows
    ``y_from`` and ``y_to`` (floats): float (W, 3), and the share of the band's rows
    inside the frame (rows outside are clipped to its edge: hair, collar, background)."""
    size = img.shape[0]
    out = np.empty((len(x), 3))
    for i, col in enumerate(x):
        a = int(np.clip(np.floor(y_from[i]), 0, size - 1))
        b = int(np.clip(np.ceil(y_to[i]), a + 1, size))
        ys = np.arange(a, b)
        pick = ys[np.argsort(luma[ys, col])][int((len(ys) - 1) * SKIN_PERCENTILE / 100)]
        out[i] = img[pick, col]
    rows = np.maximum(y_to - y_from, 1e-6)
    inside = np.clip(np.minimum(y_to, size) - np.maximum(y_from, 0.0), 0.0, None) / rows
    return out, float(inside.mean())


def _lid_skin(
    img: np.ndarray,
    luma: np.ndarray,
    lid: np.ndarray,
    low: np.ndarray,
    gap: np.ndarray,
    x: np.ndarray,
    width: float,
    skin_luma: float,
) -> np.ndarray:
    """float (W, 3): colour of the closed lid per column: the skin above the eye and the
    lower lid's, smoothed across the eye (no streaks from hairs, lashes or the crease of
    one column)."""
    above, in_above = _band_colour(
        img, luma, x, lid - SKIN_ABOVE[1] * gap, lid - SKIN_ABOVE[0] * gap
    )
    below, in_below = _band_colour(
        img, luma, x, low + SKIN_BELOW[0] * gap, low + SKIN_BELOW[1] * gap
    )
    # each band counts by how close it is to the face's skin tone (the crease's shadow,
    # brows, glasses rims, dark circles and make-up count less) and by how much of it
    # lies inside the frame
    w = [
        inside / (1.0 + ((band @ LUMA).mean() - skin_luma) ** 2 / SKIN_TONE_LEVELS**2)
        for band, inside in ((above, in_above), (below, in_below))
    ]
    if w[0] + w[1] <= 0.0:
        w = [1.0, 1.0]
    colour = (w[0] * above + w[1] * below) / (w[0] + w[1])
    sigma = max(SKIN_SPREAD * width, 1.0)
    return cv2.GaussianBlur(
        colour[None].astype(np.float32),
        (0, 0),
        sigmaX=sigma,
        sigmaY=0.1,
        borderType=cv2.BORDER_REPLICATE,
    )[0]


def lid_layer(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Portrait uint8 (S, S, 3) RGB + landmarks (478, >=2) frame px -> layer float32 (S, S, 7)."""
    size = image.shape[0]
    layer = np.zeros((size, size, LAYER_CHANNELS), np.float32)
    layer[..., :3] = image
    layer[..., V] = OUTSIDE
    layer[..., GAP] = 1.0
    img = np.ascontiguousarray(image, np.float32)
    skin_luma = face_luma(image, landmarks)
    luma = img @ LUMA.astype(np.float32)
    for upper, lower, corners, side in EYES:
        xs = landmarks[list(corners), 0]
        # one column beyond each corner: V stays smooth where the mask fades out
        x = np.arange(max(int(np.floor(xs.min())) - 1, 0), min(int(np.ceil(xs.max())) + 2, size))
        if len(x) == 0:
            continue
        lid = _curve(landmarks, upper + corners, x)
        low = _curve(landmarks, lower + corners, x)
        # lid gap of the column, plus the overlap the closed lid needs (the landmarks
        # sit a little inside the visible white at the corners)
        gap = np.maximum(low - lid, 1.0) + OVERLAP_PX * size / 512
        # the band over the lashes keeps some height at the corners, where they still show
        gap_top = np.maximum(gap, CORNER_BAND * gap.max())
        top = lid - LASH_BAND * gap_top
        y0 = max(int(np.floor(top.min())) - 2, 0)
        y1 = min(int(np.ceil((lid + REACH * gap).max())) + 2, size)  # + the soft edge
        if y1 <= y0:
            continue
        y = np.arange(y0, y1, dtype=np.float64)[:, None]
        v = (y - lid) / gap
        inside = (y >= top) & (x > xs.min()) & (x < xs.max())
        base = _lid_skin(img, luma, lid, low, gap, x, float(xs.max() - xs.min()), skin_luma)
        # the lid curves away towards the lash line and the corners
        across = (x - 0.5 * (xs.min() + xs.max())) / max(0.5 * (xs.max() - xs.min()), 1e-6)
        shade = (1.0 - LID_SHADOW * np.clip(v, 0.0, 1.0)) * (1.0 - CORNER_SHADOW * across**2)
        # fine texture of the cheek below the eye, moved up (pores, not a flat fill; the
        # skin above would bring copies of the crease and the lashes)
        src_y = np.clip(y + (low - top) + TEXTURE_FROM * gap.max(), 0.0, size - 1.0)
        src_y = src_y.astype(np.float32)
        src_x = np.broadcast_to(x.astype(np.float32), src_y.shape)
        cheek = cv2.remap(img, src_x, src_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        k = size / 512
        detail = cv2.GaussianBlur(cheek, (0, 0), DETAIL_PX[0] * k) - cv2.GaussianBlur(
            cheek, (0, 0), DETAIL_PX[1] * k
        )
        skin = ((base[None] + DETAIL_GAIN * detail) * shade[..., None]).astype(np.float32)
        feather = np.clip((y - top) / (FEATHER * gap_top), 0.0, 1.0)
        region = layer[y0:y1, x[0] : x[-1] + 1]
        region[..., :3] = np.where(inside[..., None], skin, region[..., :3])
        region[..., V] = v
        region[..., GAP] = gap
        region[..., SIDE] = side
        region[..., MASK] = inside * feather
    return layer


def layer_boxes(layer: np.ndarray, pad: int = 2) -> list[tuple[int, int, int, int]]:
    """Frame-pixel boxes (x0, y0, x1, y1) of the [left, right] lids (where MASK > 0),
    grown by ``pad``; (0, 0, 0, 0) for an eye without one."""
    size = layer.shape[0]
    boxes = []
    for _, _, _, side in EYES:
        ys, xs = np.nonzero((layer[..., MASK] > 0) & (layer[..., SIDE] == side))
        if len(ys) == 0:
            boxes.append((0, 0, 0, 0))
            continue
        boxes.append(
            (
                max(int(xs.min()) - pad, 0),
                max(int(ys.min()) - pad, 0),
                min(int(xs.max()) + pad + 1, size),
                min(int(ys.max()) + pad + 1, size),
            )
        )
    return boxes


def blend(out: np.ndarray, sampled: np.ndarray, left: float, right: float) -> np.ndarray:
    """Lids over a warped frame: out float (3, ...) 0..255, sampled layer (7, ...) -> (3, ...).

    ``left`` / ``right``: eyeBlinkLeft / eyeBlinkRight, 0..1.
    """
    b = right + sampled[SIDE] * (left - right)
    e = b * REACH - sampled[V]  # lid gaps the edge has passed this pixel by
    alpha = np.clip(e * sampled[GAP] / (2 * EDGE_SOFT_PX) + 0.5, 0.0, 1.0)
    alpha = alpha * np.clip(b / FADE_IN, 0.0, 1.0) * sampled[MASK]
    shade = 1.0 - LASH_DARK * np.clip(1.0 - e / LASH_WIDTH, 0.0, 1.0)
    return out * (1.0 - alpha) + sampled[:3] * (shade * alpha)
