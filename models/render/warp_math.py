"""The ``warp`` renderer's definition, in numpy: coefficients -> sampling maps + mouth layer.

One definition, three executions: the CPU fast path (``warp.py``, cv2.remap), the
numpy reference (``reference.py``) and the ONNX graph (``warp_onnx.py``) all
follow these steps and are tested to agree:

1. coefficients: clamp to range; ``mouthClose`` is capped at ``jawOpen`` (ARKit:
   lips meet while the jaw is open; alone it has no meaning);
2. forward displacement on the flow grid: ``F = sum_k c_k B_k + r R + s S`` (mouth and
   expression banks; the smile relax ``R`` weighted by the negative part ``r`` of the
   smile channels; the lip seal ``S`` weighted by ``s = seal_weight(c)``, which a
   relaxed smile also asks for), then the
   rigid head pose composed after it:
   ``D = F + w * (R (x + F - p) + p + t - (x + F))`` using per-point depth;
3. backward map: first-order inverse ``x0 = q - D(q)`` plus one fixed-point step
   ``x1 = q - D(x0)``; the displacement ``q - x1`` is upsampled to the frame;
4. warp the portrait by that map (bilinear, border replicate), and its lid layer
   (``eyelid.py``) by the same map: blinks draw the lids over the eye openings;
5. mouth interior: inside the polygon of the displaced inner-lip ring, a shaded
   cavity with upper teeth (hanging from the upper lip) and tongue / lower teeth
   (standing on the lower lip), each following its lip's points, faded in as the
   mouth opens beyond its rest gap;
6. lip seam: where lips sealed over a portrait's own rest opening meet, a thin
   lip-coloured line along the ring (``seam``).

Before step 4, as the lips meet over a portrait's own rest opening, the portrait's
opening is replaced by lip texture (``lipfill.py``, mixed in by ``fill_weight``), so
the band of teeth the warp cannot remove shows lips.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from headcast.models.avatar import landmarks as L
from headcast.models.avatar.mouth import NEAR_SHADE, T_MAX
from headcast.models.channels import CHANNEL_INDEX, NUM_CHANNELS, POSE_SLICE, SIGNED_INDEX, clip

N_FLOW = POSE_SLICE.start  # mouth + expression channels that own a flow basis
JAW, CLOSE = CHANNEL_INDEX["jawOpen"], CHANNEL_INDEX["mouthClose"]
PRESS = (CHANNEL_INDEX["mouthPressLeft"], CHANNEL_INDEX["mouthPressRight"])
# Mean mouthPress that seals the lips (a bilabial closure from the motion model sets
# about this much); mouthClose seals them in proportion to jawOpen (ARKit: lips meet
# when mouthClose equals jawOpen).
SEAL_PRESS = 0.35
SEAL_JAW_FLOOR = 1e-3
BLINKS = (CHANNEL_INDEX["eyeBlinkLeft"], CHANNEL_INDEX["eyeBlinkRight"])
YAW, PITCH, ROLL, TX, TY = range(POSE_SLICE.start, POSE_SLICE.stop)
OPEN_RAMP_PX = 2.0  # the interior fades in over this much extra opening
EDGE_SOFT_PX = 0.75  # half-width of the anti-aliased polygon edge
# Sealed lips over the portrait's own teeth: the flow grid and the approximate inverse
# leave a 1-2 px line of teeth where the lips meet; a lip-coloured seam covers it.
SEAM_OPEN_PX = 2.0  # the seam fades in as the inner-lip opening drops below this
SEAM_HALF_PX = 1.5  # half-width of the seam along the (collapsed) inner-lip ring
SEAM_TAPER = 0.08  # it fades out over this share of the mouth width at each corner
SEAM_SHADE = 0.8  # its colour, as a share of the lip colour
# The lip fill (lipfill.py) is mixed in as the lips meet: from an opening of this share of
# the rest gap (at least SEAM_OPEN_PX) down to half of SEAM_OPEN_PX, fully below it. Mixed
# in by the seal weight instead, a half-sealed mouth showed lips and teeth cross-faded.
FILL_OPEN_SHARE = 0.3
I_UP = L.LIPS_INNER.index(L.UPPER_INNER_MID)
I_LO = L.LIPS_INNER.index(L.LOWER_INNER_MID)
I_CR = L.LIPS_INNER.index(L.INNER_CORNER_R)
I_CL = L.LIPS_INNER.index(L.INNER_CORNER_L)
# The inner lips, right corner to left (ring indices): the upper teeth hang from one, the
# lower teeth and tongue stand on the other (parabolas left dark crescents, docs/avatars.md).
UPPER_CHAIN = tuple(range(I_CR, I_CL + 1))
LOWER_CHAIN = (I_CR, *range(len(L.LIPS_INNER) - 1, I_CL - 1, -1))
MIN_STEP = 1e-4  # mouth widths: a lip segment at least this wide across


def prepare(coeffs: np.ndarray) -> np.ndarray:
    """float32 (..., K) -> clamped float32 (..., K) with mouthClose <= jawOpen."""
    c = np.asarray(coeffs, np.float32)
    if c.shape[-1] != NUM_CHANNELS:
        raise ValueError(f"expected {NUM_CHANNELS} coefficients, got shape {c.shape}")
    c = clip(np.nan_to_num(c, nan=0.0, posinf=0.0, neginf=0.0))
    c[..., CLOSE] = np.minimum(c[..., CLOSE], c[..., JAW])
    return c


def rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """float64 (3, 3) = Rz(roll) @ Rx(pitch) @ Ry(yaw) in image axes (x right, y down, z to camera).

    Positive yaw turns the face towards the image's right, positive pitch nods
    the chin down, positive roll tilts the head clockwise on screen.
    """
    y, p, r = np.deg2rad([yaw_deg, pitch_deg, roll_deg])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def pose_displace(
    xy: np.ndarray,
    z: np.ndarray,
    weight: np.ndarray | float,
    c: np.ndarray,
    pivot: np.ndarray,
    size: int,
) -> np.ndarray:
    """Rigid head motion of points ``xy`` (2, ...) at depth ``z`` (...), scaled by ``weight``.

    Computed in the dtype of ``xy`` (float32 on the flow grid).
    """
    dt = xy.dtype
    rot = rotation(float(c[YAW]), float(c[PITCH]), float(c[ROLL])).astype(dt)
    p = np.asarray(pivot, dt)
    rx, ry, rz = xy[0] - p[0], xy[1] - p[1], np.asarray(z, dt) - p[2]
    # Unrolled 2x3 product: only the image-plane rows of the rotation are needed.
    tx = float(c[TX]) * size + p[0]
    ty = float(c[TY]) * size + p[1]
    dx = rot[0, 0] * rx + rot[0, 1] * ry + rot[0, 2] * rz + (tx - xy[0])
    dy = rot[1, 0] * rx + rot[1, 1] * ry + rot[1, 2] * rz + (ty - xy[1])
    return np.stack([dx * weight, dy * weight])


@lru_cache(maxsize=16)
def grid_xy(size: int, grid: int) -> np.ndarray:
    """float64 (2, G, G) pixel coordinates of the flow-grid samples (half-pixel centres); read-only."""
    c = (np.arange(grid) + 0.5) * size / grid - 0.5
    gx, gy = np.meshgrid(c, c)
    out = np.stack([gx, gy])
    out.flags.writeable = False
    return out


def forward_field(arrays: dict[str, np.ndarray], c: np.ndarray, size: int) -> np.ndarray:
    """Prepared coefficients (K,) -> forward displacement float32 (2, G, G) in pixels."""
    bases = arrays["bases"]
    g = bases.shape[-1]
    w = forward_weights(c)
    active = np.flatnonzero(w)
    # Only the active channels, and einsum's own loop rather than a BLAS call: a
    # threaded sgemv on a busy machine costs more in synchronisation than it saves.
    flow = np.einsum("k,kn->n", w[active], bases.reshape(len(bases), -1)[active]).reshape(2, g, g)
    relax = relax_weights(c)
    if np.any(relax):
        flow = flow + np.tensordot(relax, arrays["relax"], axes=1)
    seal = seal_weight(c, arrays)
    if seal > 0.0:
        flow = flow + np.float32(seal) * arrays["seal"]
    if not np.any(c[POSE_SLICE]):
        return flow.astype(np.float32)
    flow = flow.astype(np.float32)
    xy = grid_xy(size, g).astype(np.float32) + flow
    pose = pose_displace(xy, arrays["depth"], arrays["pose_weight"], c, arrays["pivot"], size)
    return flow + pose


Sampler = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""(field (C, H, W), x (...), y (...)) in field pixel coords -> (C, ...) bilinear, border clamp."""


SUBPIXEL = 32  # sampling positions are rounded to 1/32 px, as cv2.remap does (INTER_BITS = 5)


def quantize(x: np.ndarray) -> np.ndarray:
    """Round sampling positions to 1/SUBPIXEL px (round half to even, like cvRound and ONNX Round)."""
    return np.rint(np.asarray(x, np.float64) * SUBPIXEL) / SUBPIXEL


def bilinear(field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Reference bilinear sampler: field (C, H, W) at float x, y (...) -> (C, ...), border clamp.

    Positions are quantised to 1/SUBPIXEL px so every execution samples the same points.
    """
    h, w = field.shape[-2:]
    x, y = quantize(x), quantize(y)
    x = np.clip(x, 0.0, w - 1.0)
    y = np.clip(y, 0.0, h - 1.0)
    x0 = np.clip(np.floor(x).astype(np.int64), 0, w - 2) if w > 1 else np.zeros_like(x, np.int64)
    y0 = np.clip(np.floor(y).astype(np.int64), 0, h - 2) if h > 1 else np.zeros_like(y, np.int64)
    fx, fy = x - x0, y - y0
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    top = field[:, y0, x0] * (1 - fx) + field[:, y0, x1] * fx
    bot = field[:, y1, x0] * (1 - fx) + field[:, y1, x1] * fx
    return top * (1 - fy) + bot * fy


def forward_weights(c: np.ndarray) -> np.ndarray:
    """Weights (N_FLOW,) of the forward bases: blinks are drawn by the lid layer instead,
    negative smiles by the relax fields (:func:`relax_weights`)."""
    w = np.array(c[:N_FLOW], np.float32, copy=True)
    w[list(BLINKS)] = 0.0
    return np.maximum(w, 0.0)


def relax_weights(c: np.ndarray) -> np.ndarray:
    """float32 (2,): how far the portrait's own smile is relaxed on its [left, right]
    side: the negative part of mouthSmileLeft / mouthSmileRight."""
    return np.maximum(-np.asarray(c, np.float32)[list(SIGNED_INDEX)], 0.0)


def seal_weight(c: np.ndarray, arrays: dict[str, np.ndarray]) -> float:
    """0..1: how far the lips close over the portrait's own rest opening (teeth, open mouth).

    ``max(mean press / SEAL_PRESS, mouthClose / jawOpen, relaxed smile)``, clipped: not
    linear in the coefficients, so a bilabial /p b m/ shuts a toothy smile without
    pressing its lips through each other at full press, nor on a relaxed smile (whose
    part of the seal is ``relax_weights(c) . relax_seal / 2``).
    """
    press = 0.5 * (float(c[PRESS[0]]) + float(c[PRESS[1]])) / SEAL_PRESS
    close = float(c[CLOSE]) / max(float(c[JAW]), SEAL_JAW_FLOOR)
    relaxed = 0.5 * float(relax_weights(c) @ arrays["relax_seal"])
    return float(np.clip(max(press, close, relaxed), 0.0, 1.0))


def blinks(c: np.ndarray) -> tuple[float, float]:
    """(eyeBlinkLeft, eyeBlinkRight) of prepared coefficients, for ``eyelid.blend``."""
    return float(c[BLINKS[0]]), float(c[BLINKS[1]])


def inverse_displacement(forward: np.ndarray, size: int, sample: Sampler = bilinear) -> np.ndarray:
    """Forward D (2, G, G) -> backward displacement U (2, G, G): source = q - U(q)."""
    g = forward.shape[-1]
    q = grid_xy(size, g)
    x0 = q - forward
    scale = g / size
    d_at_x0 = sample(forward, (x0[0] + 0.5) * scale - 0.5, (x0[1] + 0.5) * scale - 0.5)
    return d_at_x0.astype(np.float32)


def lip_ring(arrays: dict[str, np.ndarray], c: np.ndarray, size: int) -> np.ndarray:
    """Displaced inner-lip ring float64 (20, 2): the mouth-opening polygon in the output frame."""
    pts = arrays["lip_points"].astype(np.float64)
    moved = pts + np.tensordot(forward_weights(c), arrays["lip_bases"], axes=1)
    moved = moved + np.tensordot(relax_weights(c), arrays["relax_lip"], axes=1)
    moved = moved + seal_weight(c, arrays) * arrays["seal_lip"].astype(np.float64)
    if np.any(c[POSE_SLICE]):
        moved = moved + pose_displace(moved.T, arrays["lip_depth"], 1.0, c, arrays["pivot"], size).T
    return moved


@dataclass(frozen=True)
class MouthState:
    """Per-frame mouth geometry in output pixels."""

    ring: np.ndarray  # float64 (20, 2)
    origin: np.ndarray  # (2,) upper inner-lip middle
    u: np.ndarray  # (2,) unit vector across the mouth (towards the subject's left corner)
    v: np.ndarray  # (2,) unit vector down the face
    width: float  # inner-corner distance, px
    opening: float  # inner gap at the middle, px (along v)
    alpha: float  # 0..1 interior fade-in
    upper: tuple[np.ndarray, np.ndarray]  # the upper lip's points: float64 (L,) s across
    lower: tuple[np.ndarray, np.ndarray]  # (right corner first), (L,) down; mouth widths


def mouth_state(arrays: dict[str, np.ndarray], c: np.ndarray, size: int) -> MouthState:
    ring = lip_ring(arrays, c, size)
    across = ring[I_CL] - ring[I_CR]
    width = max(float(np.hypot(across[0], across[1])), 1e-3)
    u = across / width
    v = np.array([-u[1], u[0]])
    origin = ring[I_UP]
    opening = float((ring[I_LO] - origin) @ v)
    rest_gap = float(arrays["mouth_shape"][0])
    alpha = float(np.clip((opening - rest_gap) / OPEN_RAMP_PX, 0.0, 1.0))

    def chain(idx: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        d = ring[list(idx)] - origin
        return d @ u / width + 0.5, d @ v / width

    return MouthState(
        ring, origin, u, v, width, opening, alpha, chain(UPPER_CHAIN), chain(LOWER_CHAIN)
    )


def lip_line(s: np.ndarray, lip: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """A lip's distance below the origin (mouth widths) at ``s`` (``MouthState.upper``
    or ``.lower``): linear between its points, flat beyond the corners; a sum of ramps,
    one per segment (a segment running backwards, narrower than MIN_STEP, is a step)."""
    across, down = lip
    if np.all(np.diff(across) >= MIN_STEP):  # the usual case: the same line, faster
        return np.interp(s, across, down).astype(s.dtype)
    ds = np.maximum(np.diff(across), MIN_STEP).astype(s.dtype)
    rise = np.diff(down).astype(s.dtype)
    out = np.full(s.shape, down[0], s.dtype)
    for a, w, h in zip(across[:-1].astype(s.dtype), ds, rise, strict=True):
        out += h * np.clip((s - a) / w, 0.0, 1.0)
    return out


def polygon_sdf(px: np.ndarray, py: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Signed distance (px, positive inside) from points to a closed polygon ring (N, 2).

    Computed in the dtype of ``px`` (the fast path passes float32).
    """
    dt = np.asarray(px).dtype
    ring = ring.astype(dt, copy=False)
    ax, ay = ring[:, 0], ring[:, 1]
    bx, by = np.roll(ax, -1), np.roll(ay, -1)
    ex, ey = bx - ax, by - ay
    inv_len2 = 1.0 / np.maximum(ex * ex + ey * ey, dt.type(1e-12))
    inv_ey = 1.0 / np.where(ey == 0, dt.type(1e-12), ey)
    qx = px[..., None] - ax
    qy = py[..., None] - ay
    t = np.clip((qx * ex + qy * ey) * inv_len2, 0.0, 1.0)
    dx = qx - t * ex
    dy = qy - t * ey
    dist = np.sqrt((dx * dx + dy * dy).min(axis=-1))
    yq = py[..., None]
    # Even-odd rule: edges straddling the point's row, crossed to its right.
    crosses = ((ay > yq) != (by > yq)) & (qx < ex * qy * inv_ey)
    inside = (np.count_nonzero(crosses, axis=-1) % 2) == 1
    return np.where(inside, dist, -dist)


def texture_coords(
    px: np.ndarray, py: np.ndarray, m: MouthState
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Output pixels -> (s across 0..1, t below the upper lip, t above the lower lip) in mouth widths."""
    rx, ry = px - m.origin[0], py - m.origin[1]
    s = (rx * m.u[0] + ry * m.u[1]) / m.width + 0.5
    down = (rx * m.v[0] + ry * m.v[1]) / m.width
    t_up = down - lip_line(s, m.upper)
    t_lo = lip_line(s, m.lower) - down
    return s, t_up, t_lo


def tex_pixel(
    s: np.ndarray, t: np.ndarray, tex_h: int, tex_w: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mouth-frame (s, t) -> texel coordinates (x, y) for a (tex_h, tex_w) texture."""
    return s * tex_w - 0.5, t / T_MAX * tex_h - 0.5


def coverage(px: np.ndarray, py: np.ndarray, m: MouthState) -> np.ndarray:
    """Anti-aliased polygon coverage 0..1 of the mouth opening (before the fade-in alpha)."""
    return np.clip(polygon_sdf(px, py, m.ring) / (2 * EDGE_SOFT_PX) + 0.5, 0.0, 1.0)


def interior(
    px: np.ndarray,
    py: np.ndarray,
    m: MouthState,
    arrays: dict[str, np.ndarray],
    sample: Sampler = bilinear,
    with_cover: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Mouth-interior colour float (3, ...) 0..255 and coverage alpha (...) 0..1 at output pixels."""
    s, t_up, t_lo = texture_coords(px, py, m)
    cav = arrays["cavity"].astype(np.float64)
    depth = np.sqrt(np.clip(np.minimum(t_up, t_lo) / 0.14, 0.0, 1.0))
    shape = (3,) + (1,) * depth.ndim
    color = cav[3:].reshape(shape) * (1 - depth) + cav[:3].reshape(shape) * depth
    upper, lower = arrays["teeth_upper"], arrays["teeth_lower"]
    for tex, t in ((lower, t_lo), (upper, t_up)):
        tx, ty = tex_pixel(s, t, tex.shape[0], tex.shape[1])
        layer = sample(np.moveaxis(tex.astype(np.float32), -1, 0), tx, ty)
        # Outside the texture's rows nothing of the layer is drawn.
        valid = (t >= 0.0) & (t < T_MAX)
        a = layer[3] / 255.0 * valid
        color = color * (1 - a) + layer[:3] * a
    cover = coverage(px, py, m) * m.alpha if with_cover else np.ones(px.shape)
    return color, cover


def identity_map(size: int) -> np.ndarray:
    c = np.arange(size, dtype=np.float32)
    gx, gy = np.meshgrid(c, c)
    return np.stack([gx, gy])


def seam_weight(m: MouthState, rest_gap: float) -> float:
    """0..1: how much of the lip seam to draw. Only on a portrait with an open rest gap
    (teeth, an open mouth) whose lips the flow has brought (nearly) together."""
    closing = np.clip((SEAM_OPEN_PX - m.opening) / SEAM_OPEN_PX, 0.0, 1.0)
    open_rest = np.clip((rest_gap - SEAM_OPEN_PX) / SEAM_OPEN_PX, 0.0, 1.0)
    return float(closing * open_rest)


def fill_weight(m: MouthState, rest_gap: float) -> float:
    """0..1: how much of the lip fill to mix into the portrait (see FILL_OPEN_SHARE)."""
    start = max(FILL_OPEN_SHARE * rest_gap, SEAM_OPEN_PX)
    end = 0.5 * SEAM_OPEN_PX
    return float(np.clip((start - m.opening) / (start - end), 0.0, 1.0))


def seam_color(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """float64 (3,) 0..255: the seam's colour, from the cavity colour next to the lips."""
    return arrays["cavity"][3:].astype(np.float64) * (SEAM_SHADE / NEAR_SHADE)


def seam(px: np.ndarray, py: np.ndarray, m: MouthState, weight: float) -> np.ndarray:
    """Seam alpha (...) 0..1 at output pixels: within SEAM_HALF_PX of the inner-lip ring,
    between the corners."""
    s, _, _ = texture_coords(px, py, m)
    dist = np.abs(polygon_sdf(px, py, m.ring))
    line = np.clip((SEAM_HALF_PX - dist) / (2 * EDGE_SOFT_PX) + 0.5, 0.0, 1.0)
    taper = np.clip(np.minimum(s, 1.0 - s) / SEAM_TAPER, 0.0, 1.0)
    return line * taper * weight
