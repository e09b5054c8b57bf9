"""The ``warp`` renderer as one ONNX graph: ``coeffs float32 (B, K) -> frames uint8 (B, S, S, 3)``.

Built per avatar with ``onnx.helper`` (the avatar's arrays become initialisers),
so no torch is needed to create or run it. The batch dimension lets one call
render a frame for several sessions on a GPU (CUDA execution provider). The
steps mirror ``warp_math`` exactly; GridSample is opset 16+ ``bilinear`` with
``border`` padding and ``align_corners=0``, Resize is ``linear`` / ``half_pixel``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from headcast.models.avatar.mouth import T_MAX
from headcast.models.avatar.pack import AvatarPack
from headcast.models.channels import NUM_CHANNELS, SIGNED_INDEX, channel_bounds
from headcast.models.onnx_session import Provider, create_session
from headcast.models.render import eyelid
from headcast.models.render import onnx_graph as G
from headcast.models.render import warp_math as wm

OPSET = 17


def build_model(pack: AvatarPack) -> onnx.ModelProto:
    """The renderer graph for one avatar pack."""
    a = pack.arrays
    size, grid = pack.size, pack.grid
    n_flow = wm.N_FLOW
    g = G.Graph()
    coeffs = "coeffs"

    # 1. prepare: clamp, mouthClose <= jawOpen
    lo, hi = channel_bounds()
    c = g.op("Min", g.op("Max", coeffs, g.const(lo)), g.const(hi))
    close, jaw = g.col(c, wm.CLOSE), g.col(c, wm.JAW)
    onehot = np.zeros(NUM_CHANNELS, np.float32)
    onehot[wm.CLOSE] = 1.0
    c = g.add(c, g.mul(g.sub(g.op("Min", close, jaw), close), g.const(onehot)))

    # 2. forward field and pose
    mask = np.ones(n_flow, np.float32)
    mask[list(wm.BLINKS)] = 0.0
    w_fwd = g.op(
        "Relu",
        g.mul(g.op("Slice", c, g.const([0]), g.const([n_flow]), g.const([1])), g.const(mask)),
    )
    # smile relax: the negative part of the signed (smile) channels, (B, 2)
    relax_w = g.op(
        "Relu", g.op("Neg", g.op("Concat", *(g.col(c, k) for k in SIGNED_INDEX), axis=1))
    )
    # lip seal: clip(max(mean press / SEAL_PRESS, mouthClose / max(jawOpen, floor),
    #                    relaxed smile . relax_seal / 2), 0, 1)
    press = g.mul(
        g.add(g.col(c, wm.PRESS[0]), g.col(c, wm.PRESS[1])),
        g.const(np.float32(0.5 / wm.SEAL_PRESS)),
    )
    close_ratio = g.div(
        g.col(c, wm.CLOSE), g.op("Max", g.col(c, wm.JAW), g.const(np.float32(wm.SEAL_JAW_FLOOR)))
    )
    relaxed = g.op("MatMul", relax_w, g.const(0.5 * a["relax_seal"].reshape(2, 1)))
    seal = g.clip(g.op("Max", g.op("Max", press, close_ratio), relaxed), 0.0, 1.0)  # (B, 1)
    flow = g.add(
        g.op("MatMul", w_fwd, g.const(a["bases"].reshape(n_flow, -1))),
        g.mul(seal, g.const(a["seal"].reshape(1, -1))),
    )
    flow = g.add(flow, g.op("MatMul", relax_w, g.const(a["relax"].reshape(2, -1))))
    flow = g.reshape(flow, [-1, 2, grid, grid])
    q = wm.grid_xy(size, grid).astype(np.float32)
    fx, fy = g.col(flow, 0), g.col(flow, 1)  # (B, 1, G, G)
    px = g.add(fx, g.const(q[0][None, None]))
    py = g.add(fy, g.const(q[1][None, None]))
    dx, dy = G.pose(
        g,
        c,
        (px, py),
        g.const(a["depth"][None, None]),
        g.const(a["pose_weight"][None, None]),
        a["pivot"].astype(np.float64),
        size,
    )
    fwd_x, fwd_y = g.add(fx, dx), g.add(fy, dy)
    forward = g.op("Concat", fwd_x, fwd_y, axis=1)
    g.shapes[forward] = (grid, grid)

    # 3. backward map: first-order inverse + one fixed-point step
    x0 = g.op("Squeeze", g.sub(g.const(q[0][None, None]), fwd_x), g.const([1]))
    y0 = g.op("Squeeze", g.sub(g.const(q[1][None, None]), fwd_y), g.const([1]))
    back = G.sample(g, forward, x0, y0, size)  # (B, 2, G, G)

    # 4. upsample and warp the portrait
    scales = g.const(np.array([1.0, 1.0, size / grid, size / grid], np.float32))
    up = g.op(
        "Resize", back, "", scales, mode="linear", coordinate_transformation_mode="half_pixel"
    )
    ident = wm.identity_map(size)
    sx = g.sub(g.const(ident[0][None]), g.op("Squeeze", g.col(up, 0), g.const([1])))
    sy = g.sub(g.const(ident[1][None]), g.op("Squeeze", g.col(up, 1), g.const([1])))
    batch = g.op("Slice", g.op("Shape", coeffs), g.const([0]), g.const([1]))
    img_shape = g.op("Concat", batch, g.const(np.array([3, size, size], np.int64)), axis=0)
    image = g.op(
        "Expand", g.const(np.moveaxis(pack.image.astype(np.float32), -1, 0)[None]), img_shape
    )
    g.shapes[image] = (size, size)
    warped = G.sample(g, image, sx, sy, size)  # (B, 3, S, S)
    warped = _lids(g, pack, c, batch, (sx, sy), warped)

    # 5. mouth interior
    ring_n = len(a["lip_points"])
    ring_off = g.reshape(
        g.add(
            g.add(
                g.op("MatMul", w_fwd, g.const(a["lip_bases"].reshape(n_flow, -1))),
                g.mul(seal, g.const(a["seal_lip"].reshape(1, -1))),
            ),
            g.op("MatMul", relax_w, g.const(a["relax_lip"].reshape(2, -1))),
        ),
        [-1, ring_n, 2, 1],
    )
    rx = g.add(
        g.reshape(g.const(a["lip_points"][:, 0]), [1, ring_n, 1]),
        g.reshape(g.col(ring_off, 0, 2), [-1, ring_n, 1]),
    )
    ry = g.add(
        g.reshape(g.const(a["lip_points"][:, 1]), [1, ring_n, 1]),
        g.reshape(g.col(ring_off, 1, 2), [-1, ring_n, 1]),
    )
    rx4, ry4 = (
        g.op("Unsqueeze", rx, g.const([3])),
        g.op("Unsqueeze", ry, g.const([3])),
    )  # (B, N, 1, 1)
    pdx, pdy = G.pose(
        g,
        c,
        (rx4, ry4),
        g.const(a["lip_depth"].reshape(1, ring_n, 1, 1)),
        None,
        a["pivot"].astype(np.float64),
        size,
    )
    rx4, ry4 = g.add(rx4, pdx), g.add(ry4, pdy)  # ring (B, N, 1, 1)

    def pick(t: str, i: int) -> str:
        return g.col(t, i)  # (B, 1, 1, 1)

    ox, oy = pick(rx4, wm.I_UP), pick(ry4, wm.I_UP)
    lx, ly = pick(rx4, wm.I_LO), pick(ry4, wm.I_LO)
    crx, cry = pick(rx4, wm.I_CR), pick(ry4, wm.I_CR)
    clx, cly = pick(rx4, wm.I_CL), pick(ry4, wm.I_CL)
    ax_, ay_ = g.sub(clx, crx), g.sub(cly, cry)
    width = g.op(
        "Max", g.op("Sqrt", g.add(g.mul(ax_, ax_), g.mul(ay_, ay_))), g.const(np.float32(1e-3))
    )
    ux, uy = g.div(ax_, width), g.div(ay_, width)
    vx, vy = g.mul(uy, g.const(np.float32(-1.0))), ux
    opening = g.add(g.mul(g.sub(lx, ox), vx), g.mul(g.sub(ly, oy), vy))
    rest_gap, upper_curve = (float(v) for v in a["mouth_shape"])
    alpha = g.clip(
        g.div(g.sub(opening, g.const(np.float32(rest_gap))), g.const(np.float32(wm.OPEN_RAMP_PX))),
        0.0,
        1.0,
    )
    half = g.const(np.float32(0.5))
    mx, my = g.mul(g.add(clx, crx), half), g.mul(g.add(cly, cry), half)
    lower_curve = g.div(g.add(g.mul(g.sub(lx, mx), vx), g.mul(g.sub(ly, my), vy)), width)

    pix_x = g.const(ident[0][None, None])  # (1, 1, S, S)
    pix_y = g.const(ident[1][None, None])
    dx_, dy_ = g.sub(pix_x, ox), g.sub(pix_y, oy)
    s = g.add(g.div(g.add(g.mul(dx_, ux), g.mul(dy_, uy)), width), half)
    down = g.div(g.add(g.mul(dx_, vx), g.mul(dy_, vy)), width)
    sm = g.sub(s, half)
    bow = g.mul(g.const(np.float32(4.0)), g.mul(sm, sm))
    t_up = g.sub(down, g.mul(g.const(np.float32(upper_curve)), bow))
    t_lo = g.sub(g.sub(g.div(opening, width), g.mul(lower_curve, bow)), down)
    cav = a["cavity"].astype(np.float32)
    depth = g.op(
        "Sqrt", g.clip(g.div(g.op("Min", t_up, t_lo), g.const(np.float32(0.14))), 0.0, 1.0)
    )
    one = g.const(np.float32(1.0))
    color = g.add(
        g.mul(g.const(cav[3:].reshape(1, 3, 1, 1)), g.sub(one, depth)),
        g.mul(g.const(cav[:3].reshape(1, 3, 1, 1)), depth),
    )  # (B, 3, S, S)
    for tex_name, t in (("teeth_lower", t_lo), ("teeth_upper", t_up)):
        tex = a[tex_name]
        tex_shape = g.op(
            "Concat", batch, g.const(np.array([4, tex.shape[0], tex.shape[1]], np.int64)), axis=0
        )
        tex_c = g.op("Expand", g.const(np.moveaxis(tex.astype(np.float32), -1, 0)[None]), tex_shape)
        th, tw = tex.shape[:2]
        tx = G.quant(
            g, g.op("Squeeze", g.sub(g.mul(s, g.const(np.float32(tw))), half), g.const([1]))
        )
        ty = G.quant(
            g, g.op("Squeeze", g.sub(g.mul(t, g.const(np.float32(th / T_MAX))), half), g.const([1]))
        )
        layer = G.sample_texels(g, tex_c, tx, ty, th, tw)
        valid = g.op(
            "Cast",
            g.op(
                "And",
                g.op("GreaterOrEqual", t, g.const(np.float32(0.0))),
                g.op("Less", t, g.const(np.float32(T_MAX))),
            ),
            to=TensorProto.FLOAT,
        )
        la = g.mul(g.div(g.col(layer, 3), g.const(np.float32(255.0))), valid)
        rgb = g.op("Slice", layer, g.const([0]), g.const([3]), g.const([1]))
        color = g.add(g.mul(color, g.sub(one, la)), g.mul(rgb, la))

    # polygon signed distance over the ring's edges: (B, N, S, S)
    nxt = [(i + 1) % ring_n for i in range(ring_n)]
    bx = g.op("Gather", rx4, g.const(np.array(nxt, np.int64)), axis=1)
    by = g.op("Gather", ry4, g.const(np.array(nxt, np.int64)), axis=1)
    ex, ey = g.sub(bx, rx4), g.sub(by, ry4)
    len2 = g.op("Max", g.add(g.mul(ex, ex), g.mul(ey, ey)), g.const(np.float32(1e-12)))
    qx, qy = g.sub(pix_x, rx4), g.sub(pix_y, ry4)
    tt = g.clip(g.div(g.add(g.mul(qx, ex), g.mul(qy, ey)), len2), 0.0, 1.0)
    ddx, ddy = g.sub(qx, g.mul(tt, ex)), g.sub(qy, g.mul(tt, ey))
    dist = g.op(
        "Sqrt", g.op("ReduceMin", g.add(g.mul(ddx, ddx), g.mul(ddy, ddy)), keepdims=1, axes=[1])
    )
    above_a = g.op("Greater", ry4, pix_y)
    above_b = g.op("Greater", by, pix_y)
    safe_ey = g.op(
        "Where", g.op("Equal", ey, g.const(np.float32(0.0))), g.const(np.float32(1e-12)), ey
    )
    x_cross = g.add(g.div(g.mul(ex, qy), safe_ey), rx4)
    crosses = g.op("And", g.op("Xor", above_a, above_b), g.op("Less", pix_x, x_cross))
    n_cross = g.op(
        "ReduceSum",
        g.op("Cast", crosses, to=TensorProto.FLOAT),
        g.const(np.array([1], np.int64)),
        keepdims=1,
    )
    odd = g.op("Mod", n_cross, g.const(np.float32(2.0)), fmod=1)
    sign = g.sub(g.mul(odd, g.const(np.float32(2.0))), one)  # +1 inside, -1 outside
    sdf = g.mul(dist, sign)
    cover = g.mul(
        g.clip(g.add(g.div(sdf, g.const(np.float32(2 * wm.EDGE_SOFT_PX))), half), 0.0, 1.0), alpha
    )
    out = g.add(g.mul(warped, g.sub(one, cover)), g.mul(color, cover))

    # lip seam over sealed lips (warp_math.seam)
    open_rest = float(np.clip((rest_gap - wm.SEAM_OPEN_PX) / wm.SEAM_OPEN_PX, 0.0, 1.0))
    if open_rest > 0.0:
        closing = g.clip(
            g.div(
                g.sub(g.const(np.float32(wm.SEAM_OPEN_PX)), opening),
                g.const(np.float32(wm.SEAM_OPEN_PX)),
            ),
            0.0,
            1.0,
        )
        line = g.clip(
            g.add(
                g.div(
                    g.sub(g.const(np.float32(wm.SEAM_HALF_PX)), dist),
                    g.const(np.float32(2 * wm.EDGE_SOFT_PX)),
                ),
                half,
            ),
            0.0,
            1.0,
        )
        taper = g.clip(
            g.div(g.op("Min", s, g.sub(one, s)), g.const(np.float32(wm.SEAM_TAPER))), 0.0, 1.0
        )
        seam_a = g.mul(g.mul(line, taper), g.mul(closing, g.const(np.float32(open_rest))))
        seam_rgb = g.const(wm.seam_color(a).astype(np.float32).reshape(1, 3, 1, 1))
        out = g.add(g.mul(out, g.sub(one, seam_a)), g.mul(seam_rgb, seam_a))

    # 6. uint8 (B, S, S, 3)
    out = g.op("Cast", g.clip(g.op("Round", out), 0.0, 255.0), to=TensorProto.UINT8)
    g.nodes.append(helper.make_node("Transpose", [out], ["frames"], perm=[0, 2, 3, 1]))
    graph = helper.make_graph(
        g.nodes,
        "headcast_warp",
        [helper.make_tensor_value_info("coeffs", TensorProto.FLOAT, ["batch", NUM_CHANNELS])],
        [helper.make_tensor_value_info("frames", TensorProto.UINT8, ["batch", size, size, 3])],
        g.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="headcast"
    )
    model.ir_version = 8
    helper.set_model_props(
        model,
        {
            "renderer": "warp",
            "size": str(size),
            "grid": str(grid),
            "channels": ",".join(pack.meta.get("channels", []) or []),
        },
    )
    return model


def _lids(
    g: G.Graph, pack: AvatarPack, c: str, batch: str, src: tuple[str, str], warped: str
) -> str:
    """``eyelid.blend``: the lid layer sampled at the portrait's source points ``src``
    (B, S, S) over the warped frame (B, 3, S, S)."""
    size = pack.size
    layer_np = np.moveaxis(eyelid.lid_layer(pack.image, pack.arrays["landmarks"]), -1, 0)
    shape = g.op(
        "Concat", batch, g.const(np.array([eyelid.LAYER_CHANNELS, size, size], np.int64)), axis=0
    )
    layer = g.op("Expand", g.const(layer_np[None]), shape)
    g.shapes[layer] = (size, size)
    sampled = G.sample(g, layer, src[0], src[1], size)  # (B, 7, S, S)
    left = g.reshape(g.col(c, wm.BLINKS[0]), [-1, 1, 1, 1])
    right = g.reshape(g.col(c, wm.BLINKS[1]), [-1, 1, 1, 1])
    one = g.const(np.float32(1.0))
    b = g.add(right, g.mul(g.col(sampled, eyelid.SIDE), g.sub(left, right)))
    e = g.sub(g.mul(b, g.const(np.float32(eyelid.REACH))), g.col(sampled, eyelid.V))
    edge = g.div(g.mul(e, g.col(sampled, eyelid.GAP)), g.const(np.float32(2 * eyelid.EDGE_SOFT_PX)))
    alpha = g.clip(g.add(edge, g.const(np.float32(0.5))), 0.0, 1.0)
    alpha = g.mul(alpha, g.clip(g.div(b, g.const(np.float32(eyelid.FADE_IN))), 0.0, 1.0))
    alpha = g.mul(alpha, g.col(sampled, eyelid.MASK))
    lash = g.clip(g.sub(one, g.div(e, g.const(np.float32(eyelid.LASH_WIDTH)))), 0.0, 1.0)
    shade = g.sub(one, g.mul(lash, g.const(np.float32(eyelid.LASH_DARK))))
    rgb = g.op("Slice", sampled, g.const([0]), g.const([3]), g.const([1]))
    return g.add(g.mul(warped, g.sub(one, alpha)), g.mul(rgb, g.mul(shade, alpha)))


class OnnxWarpRenderer:
    """Renderer protocol over ONNX Runtime; CUDA when available (``provider="auto"``)."""

    backend = "warp-onnx"

    def __init__(
        self, pack: AvatarPack, provider: Provider = "auto", threads: int | None = None
    ) -> None:
        self.pack = pack
        self.size = pack.size
        self.session = create_session(build_model(pack).SerializeToString(), provider, threads)

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def render_batch(self, coeffs: np.ndarray) -> np.ndarray:
        """float32 (B, K) -> uint8 (B, S, S, 3)."""
        c = np.nan_to_num(
            np.asarray(coeffs, np.float32).reshape(-1, NUM_CHANNELS),
            nan=0.0,
            posinf=0.0,
            neginf=0.0,
        )
        out: np.ndarray = self.session.run(["frames"], {"coeffs": c})[0]
        return out

    def render(self, coeffs: np.ndarray) -> np.ndarray:
        """float32 (K,) -> uint8 (S, S, 3)."""
        return self.render_batch(np.asarray(coeffs, np.float32)[None])[0]
