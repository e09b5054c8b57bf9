"""The mouth steps of the ``warp`` ONNX graph, each the twin of the ``warp_math``
function of the same name: the displaced inner-lip ring, the mouth state, the
interior (cavity and teeth), the polygon coverage and the lip seam.

Shapes in comments: B batch, S frame size, N inner-lip ring points; a point or a
per-frame scalar is (B, 1, 1, 1).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from onnx import TensorProto

from headcast.models.avatar.mouth import T_MAX
from headcast.models.avatar.pack import AvatarPack
from headcast.models.render import onnx_graph as G
from headcast.models.render import warp_math as wm

XY = tuple[str, str]


class Weights(NamedTuple):
    """What the prepared coefficients ask of the flow bases."""

    forward: str  # (B, N_FLOW) forward_weights
    relax: str  # (B, 2) relax_weights
    seal: str  # (B, 1) seal_weight


class Mouth(NamedTuple):
    """``warp_math.MouthState`` as graph tensors."""

    ring: XY  # (B, N, 1, 1)
    origin: XY
    u: XY
    v: XY
    width: str
    opening: str
    alpha: str
    upper: XY  # the upper lip's points: s across, down, each (B, L, 1, 1)
    lower: XY  # the lower lip's


def lip_ring(g: G.Graph, pack: AvatarPack, c: str, w: Weights) -> XY:
    """The displaced inner-lip ring x, y (B, N, 1, 1) in the output frame."""
    a = pack.arrays
    n = len(a["lip_points"])
    off = g.add(
        g.add(
            g.op("MatMul", w.forward, g.const(a["lip_bases"].reshape(wm.N_FLOW, -1))),
            g.mul(w.seal, g.const(a["seal_lip"].reshape(1, -1))),
        ),
        g.op("MatMul", w.relax, g.const(a["relax_lip"].reshape(2, -1))),
    )
    off = g.reshape(off, [-1, n, 2, 1])
    rx = g.add(
        g.reshape(g.const(a["lip_points"][:, 0]), [1, n, 1]),
        g.reshape(g.col(off, 0, 2), [-1, n, 1]),
    )
    ry = g.add(
        g.reshape(g.const(a["lip_points"][:, 1]), [1, n, 1]),
        g.reshape(g.col(off, 1, 2), [-1, n, 1]),
    )
    rx, ry = g.op("Unsqueeze", rx, g.const([3])), g.op("Unsqueeze", ry, g.const([3]))
    depth = g.const(a["lip_depth"].reshape(1, n, 1, 1))
    pivot = a["pivot"].astype(np.float64)
    dx, dy = G.pose(g, c, (rx, ry), depth, None, pivot, pack.size)
    return g.add(rx, dx), g.add(ry, dy)


def mouth_state(g: G.Graph, a: dict[str, np.ndarray], ring: XY) -> Mouth:
    rx, ry = ring
    ox, oy = g.col(rx, wm.I_UP), g.col(ry, wm.I_UP)
    lx, ly = g.col(rx, wm.I_LO), g.col(ry, wm.I_LO)
    crx, cry = g.col(rx, wm.I_CR), g.col(ry, wm.I_CR)
    clx, cly = g.col(rx, wm.I_CL), g.col(ry, wm.I_CL)
    ax, ay = g.sub(clx, crx), g.sub(cly, cry)
    width = g.op("Max", g.op("Sqrt", g.add(g.mul(ax, ax), g.mul(ay, ay))), g.scalar(1e-3))
    ux, uy = g.div(ax, width), g.div(ay, width)
    vx, vy = g.mul(uy, g.scalar(-1.0)), ux
    opening = g.add(g.mul(g.sub(lx, ox), vx), g.mul(g.sub(ly, oy), vy))
    rest_gap = float(a["mouth_shape"][0])
    alpha = g.clip(g.div(g.sub(opening, g.scalar(rest_gap)), g.scalar(wm.OPEN_RAMP_PX)), 0.0, 1.0)

    def chain(idx: tuple[int, ...]) -> XY:
        at = g.const(np.array(idx, np.int64))
        dx = g.sub(g.op("Gather", rx, at, axis=1), ox)
        dy = g.sub(g.op("Gather", ry, at, axis=1), oy)
        across = g.add(g.div(g.add(g.mul(dx, ux), g.mul(dy, uy)), width), g.scalar(0.5))
        return across, g.div(g.add(g.mul(dx, vx), g.mul(dy, vy)), width)

    return Mouth(
        ring, (ox, oy), (ux, uy), (vx, vy), width, opening, alpha, chain(wm.UPPER_CHAIN),
        chain(wm.LOWER_CHAIN),
    )  # fmt: skip


def lip_line(g: G.Graph, s: str, lip: XY, n: int) -> str:
    """``warp_math.lip_line``: (B, 1, S, S) from s (B, 1, S, S) and a lip's ``n`` points."""
    across, down = lip

    def part(x: str, first: int, stop: int) -> str:
        return g.op("Slice", x, g.const([first]), g.const([stop]), g.const([1]))

    start = part(across, 0, n - 1)
    step = g.op("Max", g.sub(part(across, 1, n), start), g.scalar(wm.MIN_STEP))
    rise = g.sub(part(down, 1, n), part(down, 0, n - 1))
    ramps = g.clip(g.div(g.sub(s, start), step), 0.0, 1.0)  # (B, n - 1, S, S)
    total = g.op("ReduceSum", g.mul(ramps, rise), g.const(np.array([1], np.int64)), keepdims=1)
    return g.add(part(down, 0, 1), total)


def texture_coords(g: G.Graph, pix: XY, m: Mouth) -> tuple[str, str, str]:
    """(s across, t below the upper lip, t above the lower lip), each (B, 1, S, S)."""
    (ox, oy), (ux, uy), (vx, vy) = m.origin, m.u, m.v
    dx, dy = g.sub(pix[0], ox), g.sub(pix[1], oy)
    half = g.scalar(0.5)
    s = g.add(g.div(g.add(g.mul(dx, ux), g.mul(dy, uy)), m.width), half)
    down = g.div(g.add(g.mul(dx, vx), g.mul(dy, vy)), m.width)
    t_up = g.sub(down, lip_line(g, s, m.upper, len(wm.UPPER_CHAIN)))
    t_lo = g.sub(lip_line(g, s, m.lower, len(wm.LOWER_CHAIN)), down)
    return s, t_up, t_lo


def interior(g: G.Graph, a: dict[str, np.ndarray], batch: str, tex: tuple[str, str, str]) -> str:
    """Mouth-interior colour (B, 3, S, S): the shaded cavity under lower, then upper teeth."""
    s, t_up, t_lo = tex
    cav = a["cavity"].astype(np.float32)
    one, half = g.scalar(1.0), g.scalar(0.5)
    depth = g.op("Sqrt", g.clip(g.div(g.op("Min", t_up, t_lo), g.scalar(0.14)), 0.0, 1.0))
    color = g.add(
        g.mul(g.const(cav[3:].reshape(1, 3, 1, 1)), g.sub(one, depth)),
        g.mul(g.const(cav[:3].reshape(1, 3, 1, 1)), depth),
    )
    for name, t in (("teeth_lower", t_lo), ("teeth_upper", t_up)):
        texture = a[name]
        th, tw = texture.shape[:2]
        shape = g.op("Concat", batch, g.const(np.array([4, th, tw], np.int64)), axis=0)
        texels = g.op(
            "Expand", g.const(np.moveaxis(texture.astype(np.float32), -1, 0)[None]), shape
        )
        # tex_pixel, then the texture sampled there
        tx = G.quant(g, g.op("Squeeze", g.sub(g.mul(s, g.scalar(tw)), half), g.const([1])))
        ty = G.quant(g, g.op("Squeeze", g.sub(g.mul(t, g.scalar(th / T_MAX)), half), g.const([1])))
        layer = G.sample_texels(g, texels, tx, ty, th, tw)
        rows = g.op(
            "And", g.op("GreaterOrEqual", t, g.scalar(0.0)), g.op("Less", t, g.scalar(T_MAX))
        )
        valid = g.op("Cast", rows, to=TensorProto.FLOAT)
        la = g.mul(g.div(g.col(layer, 3), g.scalar(255.0)), valid)
        rgb = g.op("Slice", layer, g.const([0]), g.const([3]), g.const([1]))
        color = g.over(color, rgb, la)
    return color


def polygon_sdf(g: G.Graph, pix: XY, ring: XY, n: int) -> tuple[str, str]:
    """(signed distance, distance), each (B, 1, S, S), from the pixels to the ring's
    polygon of ``n`` points; positive inside (even-odd rule)."""
    (ax, ay), (px, py) = ring, pix
    nxt = g.const(np.array([(i + 1) % n for i in range(n)], np.int64))
    bx, by = g.op("Gather", ax, nxt, axis=1), g.op("Gather", ay, nxt, axis=1)
    ex, ey = g.sub(bx, ax), g.sub(by, ay)
    len2 = g.op("Max", g.add(g.mul(ex, ex), g.mul(ey, ey)), g.scalar(1e-12))
    qx, qy = g.sub(px, ax), g.sub(py, ay)
    t = g.clip(g.div(g.add(g.mul(qx, ex), g.mul(qy, ey)), len2), 0.0, 1.0)
    dx, dy = g.sub(qx, g.mul(t, ex)), g.sub(qy, g.mul(t, ey))
    sq = g.add(g.mul(dx, dx), g.mul(dy, dy))
    dist = g.op("Sqrt", g.op("ReduceMin", sq, keepdims=1, axes=[1]))
    safe_ey = g.op("Where", g.op("Equal", ey, g.scalar(0.0)), g.scalar(1e-12), ey)
    x_cross = g.add(g.div(g.mul(ex, qy), safe_ey), ax)
    straddles = g.op("Xor", g.op("Greater", ay, py), g.op("Greater", by, py))
    crosses = g.op("And", straddles, g.op("Less", px, x_cross))
    n_cross = g.op(
        "ReduceSum",
        g.op("Cast", crosses, to=TensorProto.FLOAT),
        g.const(np.array([1], np.int64)),
        keepdims=1,
    )
    odd = g.op("Mod", n_cross, g.scalar(2.0), fmod=1)
    sign = g.sub(g.mul(odd, g.scalar(2.0)), g.scalar(1.0))  # +1 inside, -1 outside
    return g.mul(dist, sign), dist


def coverage(g: G.Graph, sdf: str) -> str:
    """Anti-aliased coverage 0..1 of the opening (before the fade-in alpha)."""
    return g.clip(g.add(g.div(sdf, g.scalar(2 * wm.EDGE_SOFT_PX)), g.scalar(0.5)), 0.0, 1.0)


def seam_weight(g: G.Graph, m: Mouth, open_rest: float) -> str:
    """(B, 1, 1, 1): the closing lips' seam strength on a portrait open by ``open_rest``."""
    closing = g.clip(
        g.div(g.sub(g.scalar(wm.SEAM_OPEN_PX), m.opening), g.scalar(wm.SEAM_OPEN_PX)), 0.0, 1.0
    )
    return g.mul(closing, g.scalar(open_rest))


def fill_weight(g: G.Graph, m: Mouth, rest_gap: float) -> str:
    """(B, 1, 1, 1): how much of the lip fill to mix into the portrait."""
    start = max(wm.FILL_OPEN_SHARE * rest_gap, wm.SEAM_OPEN_PX)
    end = 0.5 * wm.SEAM_OPEN_PX
    return g.clip(g.div(g.sub(g.scalar(start), m.opening), g.scalar(start - end)), 0.0, 1.0)


def seam(g: G.Graph, s: str, dist: str, weight: str) -> str:
    """Seam alpha (B, 1, S, S): within SEAM_HALF_PX of the ring, tapered at the corners."""
    half_width = g.sub(g.scalar(wm.SEAM_HALF_PX), dist)
    line = g.clip(g.add(g.div(half_width, g.scalar(2 * wm.EDGE_SOFT_PX)), g.scalar(0.5)), 0.0, 1.0)
    corner = g.op("Min", s, g.sub(g.scalar(1.0), s))
    taper = g.clip(g.div(corner, g.scalar(wm.SEAM_TAPER)), 0.0, 1.0)
    return g.mul(g.mul(line, taper), weight)
