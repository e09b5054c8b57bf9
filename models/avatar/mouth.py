"""Mouth-interior textures: upper teeth, tongue with a hint of lower teeth, cavity colours.

Textures live in a mouth frame that the renderer rebuilds every frame from the
displaced inner-lip ring: ``s`` runs across the mouth (0 at the subject's right
corner, 1 at the left), ``t`` runs away from a lip in mouth widths. Rows cover
``t`` in ``[0, T_MAX)``, columns ``s`` in ``[0, 1)``, sample centres at half texels.
"""

from __future__ import annotations

import cv2
import numpy as np

from headcast.models.avatar import landmarks as L

TEX_H, TEX_W = 64, 128
T_MAX = 0.5  # mouth widths covered by a texture's rows
TOOTH_LEN = 0.12  # visible upper incisor length, mouth widths
# Tooth widths from the centre outwards (central incisor .. premolar), mouth widths.
TOOTH_WIDTHS = (0.105, 0.085, 0.08, 0.07, 0.065, 0.06)
NEAR_SHADE = 0.32  # the cavity next to the lips, as a share of the lip colour
GAP_OPEN_FRAC = 0.06  # rest opening (mouth widths) above which the portrait's own teeth are used
# Lit teeth as photographed: the mean of the portraits' own teeth on the portrait set
# (warmer than white: red / blue 1.23).
TYPICAL_TEETH = np.array([227.0, 200.0, 184.0])
LOWER_TEETH_TINT = np.array([0.983, 0.982, 0.986])  # lower teeth: a shade darker
EDGE_TINT = np.array([0.65, 0.69, 0.79])  # a translucent incisal edge: greyer, bluer
LUMA = np.array([0.299, 0.587, 0.114])  # Rec. 601 luma weights
# The colour of synthesised teeth (see teeth_color): at least this many pixels (at 512)
# of the portrait's own teeth, or of eye white brighter than the face by this factor.
OWN_TEETH_MIN_PX = 60
SCLERA_MIN_PX = 30
SCLERA_OVER_FACE = 1.1
SCLERA_TO_TEETH = 1.1  # lit teeth against the brighter quarter of the eye white
# Neither visible: teeth luma from the face's (weakly: on the set, dark skin in good
# light has teeth as bright as light skin's), at most this much over the photo's
# highlights (its 98th luma percentile), so a dim photo gets dim teeth.
FALLBACK_TEETH_LUMA = (150.0, 0.35, 160.0, 235.0)  # offset, per face luma, min, max
OVER_HIGHLIGHTS = 1.15


def texel_coords() -> tuple[np.ndarray, np.ndarray]:
    """(s, t) of texel centres, each float64 (TEX_H, TEX_W)."""
    s = (np.arange(TEX_W) + 0.5) / TEX_W
    t = (np.arange(TEX_H) + 0.5) / TEX_H * T_MAX
    gs, gt = np.meshgrid(s, t)
    return gs, gt


def _tooth_edges(widths: tuple[float, ...] = TOOTH_WIDTHS) -> np.ndarray:
    """Tooth boundaries in s, foreshortened towards the corners (the arch turns away)."""
    arc = np.concatenate([[0.0], np.cumsum(widths)])
    arc = arc / arc[-1] * (np.pi / 2) * 0.92
    half = 0.5 * np.sin(arc)
    return np.concatenate([0.5 - half[::-1], 0.5 + half[1:]])


def _teeth_columns(
    s: np.ndarray, widths: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per texel: position across its tooth u (0..1), the tooth's width, and the
    distance to the nearest tooth boundary (all in s units)."""
    edges = _tooth_edges(widths)
    idx = np.clip(np.searchsorted(edges, s) - 1, 0, len(edges) - 2)
    width = edges[idx + 1] - edges[idx]
    u = (s - edges[idx]) / width
    return u, width, np.minimum(u, 1 - u) * width


def lip_and_skin_colors(image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, float]:
    """Mean lip RGB (float64 (3,)) and mean face luma (0..255) of an aligned frame."""
    mask_lips = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask_lips, [np.round(points[list(L.LIPS_OUTER), :2]).astype(np.int32)], 1)
    cv2.fillPoly(mask_lips, [np.round(points[list(L.LIPS_INNER), :2]).astype(np.int32)], 0)
    lips = image[mask_lips > 0].astype(np.float64)
    lip_rgb = lips.mean(0) if len(lips) else np.array([150.0, 80.0, 80.0])
    return lip_rgb, face_luma(image, points)


def face_luma(image: np.ndarray, points: np.ndarray) -> float:
    """Mean luma (0..255) of the face oval of an aligned frame (128 without one)."""
    face = _polygon_pixels(image, points[list(L.FACE_OVAL), :2])
    return float((face @ LUMA).mean()) if len(face) else 128.0


def _polygon_pixels(
    image: np.ndarray, polygon: np.ndarray, hole: tuple[np.ndarray, float] | None = None
) -> np.ndarray:
    """float64 (N, 3): the pixels inside ``polygon`` (K, 2), less a disc (centre, radius)."""
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    if hole is not None:
        centre, radius = hole
        cv2.circle(mask, tuple(int(v) for v in np.round(centre)), int(np.ceil(radius)), 0, -1)
    return image[mask > 0].astype(np.float64)


def _brighter_mean(pixels: np.ndarray, quantile: float) -> np.ndarray:
    luma = pixels @ LUMA
    return pixels[luma >= np.quantile(luma, quantile)].mean(axis=0)


def teeth_color(image: np.ndarray, points: np.ndarray, face_luma: float) -> np.ndarray:
    """float64 (3,) 0..255: the lit colour synthesised teeth are drawn in.

    Teeth are as white as the light and the camera make them, whatever the skin: the
    portrait's own teeth where they show (the brighter quarter of the tooth-like pixels
    between the lips), else its eye whites (the brighter quarter of the pale pixels
    around the irises, when brighter than the face: a squint leaves only lids and
    lashes), else a typical tooth colour as bright as the face and the photo's highlights
    suggest (see FALLBACK_TEETH_LUMA).
    """
    area = (image.shape[0] / 512.0) ** 2
    mouth = _polygon_pixels(image, points[list(L.LIPS_INNER), :2])
    if len(mouth):
        own = mouth[teeth_likeness(mouth, face_luma) > 0.5]
        if len(own) >= OWN_TEETH_MIN_PX * area:
            return _brighter_mean(own, 0.75)
    whites = []
    for upper, lower, iris in (
        (L.EYE_R_UPPER, L.EYE_R_LOWER, L.IRIS_R),
        (L.EYE_L_UPPER, L.EYE_L_LOWER, L.IRIS_L),
    ):
        centre = points[iris[0], :2]
        radius = 1.05 * float(np.linalg.norm(points[list(iris[1:]), :2] - centre, axis=1).mean())
        eye = points[list(upper) + list(lower)[::-1], :2]  # a ring: both lids run out -> in
        whites.append(_polygon_pixels(image, eye, (centre, radius)))
    white = np.concatenate(whites)
    sat = (white.max(axis=1) - white.min(axis=1)) / np.maximum(white.max(axis=1), 1.0)
    white = white[sat < 0.45]
    if len(white) >= SCLERA_MIN_PX * area:
        lit = _brighter_mean(white, 0.75)
        if lit @ LUMA >= SCLERA_OVER_FACE * face_luma:
            return np.clip(SCLERA_TO_TEETH * lit, 0.0, 255.0)
    offset, slope, lo, hi = FALLBACK_TEETH_LUMA
    highlights = float(np.quantile(image.reshape(-1, 3) @ LUMA, 0.98))
    luma = min(float(np.clip(offset + slope * face_luma, lo, hi)), OVER_HIGHLIGHTS * highlights)
    return np.clip(TYPICAL_TEETH * (luma / float(TYPICAL_TEETH @ LUMA)), 0.0, 255.0)


def synth_upper_teeth(teeth_rgb: np.ndarray) -> np.ndarray:
    """uint8 (TEX_H, TEX_W, 4) RGBA: a row of upper teeth hanging from t = 0, lit in the
    middle in ``teeth_rgb`` (float (3,) 0..255, see :func:`teeth_color`)."""
    s, t = texel_coords()
    edges = _tooth_edges()
    idx = np.clip(np.searchsorted(edges, s) - 1, 0, len(edges) - 2)
    left, right = edges[idx], edges[idx + 1]
    width = right - left
    u = (s - left) / width  # 0..1 across each tooth
    centre = np.abs(2 * s - 1)  # 0 at the middle of the mouth, 1 at the corners
    length = TOOTH_LEN * (1.0 - 0.45 * centre**2)
    # Rounded incisal edge: each tooth is a little shorter at its sides.
    tip = length * (1.0 - 0.25 * (2 * u - 1) ** 4)
    alpha = np.clip((tip - t) / 0.012 + 0.5, 0.0, 1.0) * np.clip((0.97 - centre) / 0.08, 0.0, 1.0)
    gap = np.clip(np.minimum(u, 1 - u) * width / 0.006, 0.0, 1.0)  # dark seams between teeth
    base = np.asarray(teeth_rgb, np.float64)
    shade = (
        (0.55 + 0.45 * (1 - centre**2)) * (0.75 + 0.25 * gap) * (0.88 + 0.12 * np.sin(np.pi * u))
    )
    shade = shade * (0.92 + 0.08 * np.clip(t / max(TOOTH_LEN, 1e-6), 0, 1))
    rgb = base[None, None, :] * shade[..., None]
    return np.dstack([np.clip(rgb, 0, 255), alpha * 255]).round().astype(np.uint8)


LOWER_TOOTH_LEN = 0.075  # visible lower incisor length at the middle, mouth widths
# Lower teeth are narrower than the upper ones (central incisor .. premolar), mouth widths.
LOWER_TOOTH_WIDTHS = (0.062, 0.066, 0.076, 0.082, 0.085, 0.085)
TOOTH_GAP = 0.006  # half-width of the dark seam between two teeth, mouth widths
TONGUE_TOP = 0.19  # the tongue's dome reaches this far above the lower lip, mouth widths


def _lower_teeth(
    s: np.ndarray, t: np.ndarray, teeth_rgb: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """RGB float (TEX_H, TEX_W, 3) and alpha 0..1 of the lower front teeth: separate
    incisors and canines, lit in the middle, in the lower lip's shadow at their roots."""
    centre = np.abs(2 * s - 1)  # 0 at the middle of the mouth, 1 at the corners
    u, _, to_edge = _teeth_columns(s, LOWER_TOOTH_WIDTHS)
    tip = LOWER_TOOTH_LEN * (1.0 - 0.55 * centre**2) * (1.0 - 0.3 * (2 * u - 1) ** 4)
    alpha = np.clip((tip - t) / 0.008 + 0.5, 0.0, 1.0) * np.clip((0.74 - centre) / 0.1, 0.0, 1.0)
    seam = np.clip(to_edge / TOOTH_GAP, 0.0, 1.0)
    shade = (0.95 - 0.45 * centre**2) * (0.62 + 0.38 * seam) * (0.9 + 0.1 * np.sin(np.pi * u))
    shade = shade * (0.72 + 0.28 * np.clip(t / 0.03, 0.0, 1.0))  # the lip's shadow
    rgb = np.asarray(teeth_rgb, np.float64) * LOWER_TEETH_TINT * shade[..., None]
    # The incisal edge is translucent: greyer, a little blue.
    edge = np.clip((t / np.maximum(tip, 1e-6) - 0.7) / 0.3, 0.0, 1.0)[..., None]
    rgb = rgb * (1 - 0.25 * edge) + np.asarray(teeth_rgb) * EDGE_TINT * 0.25 * edge
    return rgb, alpha


def _tongue(
    s: np.ndarray, t: np.ndarray, lip_rgb: np.ndarray, exposure: float
) -> tuple[np.ndarray, np.ndarray]:
    """RGB float and alpha of the tongue: a dome behind the lower teeth, lit at its tip,
    darker towards the throat and the sides, with a faint groove down its middle."""
    r = np.sqrt(((s - 0.5) / 0.36) ** 2 + ((t + 0.02) / (TONGUE_TOP + 0.02)) ** 2)
    alpha = np.clip((1.0 - r) / 0.12, 0.0, 1.0)
    base = 0.45 * lip_rgb + 0.55 * np.array([205.0, 95.0, 100.0]) * exposure
    shade = 0.5 + 0.5 * np.clip(1.0 - r, 0.0, 1.0) ** 0.5
    shade = shade * (1.0 - 0.25 * np.clip(t / TONGUE_TOP, 0.0, 1.0))
    groove = np.exp(-(((s - 0.5) / 0.035) ** 2)) * np.clip(t / 0.06, 0.0, 1.0)
    shade = shade * (1.0 - 0.18 * groove)
    return base * shade[..., None], alpha


def synth_lower(lip_rgb: np.ndarray, teeth_rgb: np.ndarray) -> np.ndarray:
    """uint8 (TEX_H, TEX_W, 4) RGBA seen just above the lower lip: a row of lower teeth
    (shorter and narrower than the upper ones, ``teeth_rgb`` as for the upper ones) in
    front of the tongue, lit as brightly as the teeth."""
    s, t = texel_coords()
    teeth_rgb = np.asarray(teeth_rgb, np.float64)
    exposure = float(np.clip((teeth_rgb @ LUMA) / (TYPICAL_TEETH @ LUMA), 0.5, 1.1))
    teeth_rgb, teeth_a = _lower_teeth(s, t, teeth_rgb)
    tongue_rgb, tongue_a = _tongue(s, t, lip_rgb, exposure)
    a = teeth_a[..., None]
    rgb = tongue_rgb * (1 - a) + teeth_rgb * a
    alpha = np.maximum(tongue_a, teeth_a)
    return np.dstack([np.clip(rgb, 0, 255), alpha * 255]).round().astype(np.uint8)


# A portrait whose face pixels spread less than this between their largest and smallest
# channel (mean, 0..255 levels) is black and white: its mouth is drawn in grey too.
MONOCHROME_SPREAD = 6.0


def is_monochrome(image: np.ndarray, points: np.ndarray) -> bool:
    """Whether the face in uint8 (H, W, 3) RGB ``image`` (landmarks ``points``) is grey."""
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points[:, :2]).astype(np.int32)), 1)
    face = image[mask > 0].astype(np.int16)
    if not len(face):
        return False
    return float((face.max(axis=-1) - face.min(axis=-1)).mean()) < MONOCHROME_SPREAD


def to_grey(colors: np.ndarray) -> np.ndarray:
    """RGB(A) texture (..., 4) uint8 or cavity colours (6,) float -> their luma in every
    channel (alpha kept), for a black-and-white portrait."""
    if colors.ndim == 1:  # the cavity: two RGB triples
        rgb = colors.reshape(-1, 3)
        return np.repeat(rgb @ LUMA, 3).astype(colors.dtype)
    out = colors.copy()
    luma = colors[..., :3].astype(np.float64) @ LUMA
    out[..., :3] = np.clip(np.round(luma), 0, 255)[..., None].astype(colors.dtype)
    return out


def cavity_colors(lip_rgb: np.ndarray) -> np.ndarray:
    """float32 (6,): RGB of the deep cavity, RGB of the cavity next to the lips (0..255)."""
    deep = 0.16 * lip_rgb + np.array([4.0, 1.0, 1.0])
    near = NEAR_SHADE * lip_rgb
    return np.concatenate([deep, near]).astype(np.float32)


def mouth_frame(ring: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Origin (upper inner lip middle), unit across-axis u, down-axis v, mouth width from a ring."""
    i_up, i_r, i_l = (
        L.LIPS_INNER.index(k) for k in (L.UPPER_INNER_MID, L.INNER_CORNER_R, L.INNER_CORNER_L)
    )
    across = ring[i_l] - ring[i_r]
    width = float(np.linalg.norm(across))
    u = across / max(width, 1e-6)
    v = np.array([-u[1], u[0]])
    return ring[i_up], u, v, width


OWN_TEETH_LEN = 1.4 * TOOTH_LEN  # how far below the upper lip the portrait's teeth are taken


def teeth_likeness(rgb: np.ndarray, face_luma: float) -> np.ndarray:
    """float (...) 0..1: how much pixels ``rgb`` (..., 3) look like teeth: bright for the
    face, and unsaturated (tongue, lips and the cavity are red or dark)."""
    rgb = rgb.astype(np.float64)
    luma = rgb @ LUMA
    sat = (rgb.max(axis=-1) - rgb.min(axis=-1)) / np.maximum(rgb.max(axis=-1), 1.0)
    bright = np.clip((luma - 0.75 * face_luma) / (0.25 * face_luma), 0.0, 1.0)
    pale = np.clip((0.4 - sat) / 0.15, 0.0, 1.0)
    return bright * pale


def portrait_teeth(
    image: np.ndarray, points: np.ndarray, synth: np.ndarray, face_luma: float = 128.0
) -> tuple[np.ndarray, bool]:
    """Use the portrait's own upper teeth for the upper layer when its mouth is open enough.

    Only what looks like teeth, just below the upper lip, is taken: the tongue, lower
    teeth and cavity of an open-mouthed portrait would hang from the upper lip."""
    ring = points[list(L.LIPS_INNER), :2].astype(np.float64)
    origin, u, v, width = mouth_frame(ring)
    i_lo = L.LIPS_INNER.index(L.LOWER_INNER_MID)
    opening = float((ring[i_lo] - origin) @ v) / max(width, 1e-6)
    if opening < GAP_OPEN_FRAC:
        return synth, False
    s, t = texel_coords()
    px = origin[0] + (s - 0.5) * width * u[0] + t * width * v[0]
    py = origin[1] + (s - 0.5) * width * u[1] + t * width * v[1]
    sampled = cv2.remap(
        image,
        px.astype(np.float32),
        py.astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    inside = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(inside, [np.round(ring).astype(np.int32)], 255)
    a = cv2.remap(inside, px.astype(np.float32), py.astype(np.float32), cv2.INTER_LINEAR)
    a = np.minimum(a.astype(np.float64), 255.0 * (t < min(opening, OWN_TEETH_LEN)))
    a = a * teeth_likeness(sampled, face_luma)
    out = synth.astype(np.float64)
    alpha = a[..., None] / 255.0
    out[..., :3] = sampled * alpha + out[..., :3] * (1 - alpha)
    out[..., 3] = np.maximum(out[..., 3], a)
    return out.round().astype(np.uint8), True


def mouth_textures(frame: np.ndarray, points: np.ndarray) -> tuple[dict[str, np.ndarray], bool]:
    """The pack's mouth interior for an aligned portrait ``frame`` (uint8 (S, S, 3) RGB,
    landmarks ``points``): ``teeth_upper`` and ``teeth_lower`` (uint8 RGBA textures) and
    ``cavity`` (:func:`cavity_colors`), all grey for a black-and-white portrait; and
    whether the portrait's own upper teeth were used."""
    lip_rgb, luma = lip_and_skin_colors(frame, points)
    teeth_rgb = teeth_color(frame, points, luma)
    upper, own = portrait_teeth(frame, points, synth_upper_teeth(teeth_rgb), luma)
    out = {
        "teeth_upper": upper,
        "teeth_lower": synth_lower(lip_rgb, teeth_rgb),
        "cavity": cavity_colors(lip_rgb),
    }
    if is_monochrome(frame, points):  # no pink tongue in a black-and-white photo
        out = {k: to_grey(v) for k, v in out.items()}
    return out, own
