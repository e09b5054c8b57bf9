"""The ``warp`` renderer as one ONNX graph: ``coeffs float32 (B, K) -> frames uint8 (B, S, S, 3)``.

Built per avatar with ``onnx.helper`` (the avatar's arrays become initialisers),
so no torch is needed to create or run it. The batch dimension lets one call
render a frame for several sessions on a GPU (CUDA execution provider). Each step
(here and in ``onnx_mouth``) is the graph twin of the ``warp_math`` function of the
same name (``_seal_weight`` of ``seal_weight`` and so on); GridSample is opset 16+ ``bilinear``
with ``border`` padding and ``align_corners=0``, Resize is ``linear`` / ``half_pixel``.
Shapes in comments: B batch, G flow grid, S frame size, N inner-lip ring points.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from headcast.models.avatar.pack import AvatarPack
from headcast.models.channels import NUM_CHANNELS, SIGNED_INDEX, channel_bounds
from headcast.models.onnx_session import Provider, create_session
from headcast.models.render import eyelid, lipfill
from headcast.models.render import onnx_graph as G
from headcast.models.render import onnx_mouth as M
from headcast.models.render import warp_math as wm
from headcast.models.render.onnx_mouth import XY, Weights

OPSET = 17


def build_model(pack: AvatarPack) -> onnx.ModelProto:
    """The renderer graph for one avatar pack."""
    a, size = pack.arrays, pack.size
    g = G.Graph()
    c = _prepare(g, "coeffs")
    relax = _relax_weights(g, c)
    w = Weights(_forward_weights(g, c), relax, _seal_weight(g, c, relax, a))
    back = _inverse_displacement(g, _forward_field(g, pack, c, w), size, pack.grid)
    src = _sampling_maps(g, back, size, pack.grid)
    batch = g.op("Slice", g.op("Shape", "coeffs"), g.const([0]), g.const([1]))
    m = M.mouth_state(g, a, M.lip_ring(g, pack, c, w))
    frame = _lids(g, pack, c, batch, src, _warp(g, pack, batch, src, m))

    ident = wm.identity_map(size)
    pix = (g.const(ident[0][None, None]), g.const(ident[1][None, None]))  # (1, 1, S, S)
    tex = M.texture_coords(g, pix, m)
    sdf, dist = M.polygon_sdf(g, pix, m.ring, len(a["lip_points"]))
    frame = g.over(frame, M.interior(g, a, batch, tex), g.mul(M.coverage(g, sdf), m.alpha))
    rest_gap = float(a["mouth_shape"][0])
    open_rest = float(np.clip((rest_gap - wm.SEAM_OPEN_PX) / wm.SEAM_OPEN_PX, 0.0, 1.0))
    if open_rest > 0.0:
        seam_rgb = g.const(wm.seam_color(a).astype(np.float32).reshape(1, 3, 1, 1))
        seam = M.seam(g, tex[0], dist, M.seam_weight(g, m, open_rest))
        frame = g.over(frame, seam_rgb, seam)
    return _model(g, pack, frame)


def _prepare(g: G.Graph, coeffs: str) -> str:
    """Clamp to range, mouthClose <= jawOpen: (B, K)."""
    lo, hi = channel_bounds()
    c = g.op("Min", g.op("Max", coeffs, g.const(lo)), g.const(hi))
    close, jaw = g.col(c, wm.CLOSE), g.col(c, wm.JAW)
    onehot = np.zeros(NUM_CHANNELS, np.float32)
    onehot[wm.CLOSE] = 1.0
    return g.add(c, g.mul(g.sub(g.op("Min", close, jaw), close), g.const(onehot)))


def _forward_weights(g: G.Graph, c: str) -> str:
    """(B, N_FLOW): the flow channels, blinks zeroed, negative parts dropped."""
    mask = np.ones(wm.N_FLOW, np.float32)
    mask[list(wm.BLINKS)] = 0.0
    flow_c = g.op("Slice", c, g.const([0]), g.const([wm.N_FLOW]), g.const([1]))
    return g.op("Relu", g.mul(flow_c, g.const(mask)))


def _relax_weights(g: G.Graph, c: str) -> str:
    """(B, 2): the negative part of the signed (smile) channels."""
    return g.op("Relu", g.op("Neg", g.op("Concat", *(g.col(c, k) for k in SIGNED_INDEX), axis=1)))


def _seal_weight(g: G.Graph, c: str, relax: str, a: dict[str, np.ndarray]) -> str:
    """(B, 1): clip(max(mean press / SEAL_PRESS, mouthClose / max(jawOpen, floor),
    relax . relax_seal / 2), 0, 1)."""
    press = g.mul(
        g.add(g.col(c, wm.PRESS[0]), g.col(c, wm.PRESS[1])), g.scalar(0.5 / wm.SEAL_PRESS)
    )
    close = g.div(g.col(c, wm.CLOSE), g.op("Max", g.col(c, wm.JAW), g.scalar(wm.SEAL_JAW_FLOOR)))
    relaxed = g.op("MatMul", relax, g.const(0.5 * a["relax_seal"].reshape(2, 1)))
    return g.clip(g.op("Max", g.op("Max", press, close), relaxed), 0.0, 1.0)


def _forward_field(g: G.Graph, pack: AvatarPack, c: str, w: Weights) -> str:
    """Forward displacement (B, 2, G, G): the weighted bases, then the head pose."""
    a, size, grid = pack.arrays, pack.size, pack.grid
    flow = g.add(
        g.op("MatMul", w.forward, g.const(a["bases"].reshape(wm.N_FLOW, -1))),
        g.mul(w.seal, g.const(a["seal"].reshape(1, -1))),
    )
    flow = g.add(flow, g.op("MatMul", w.relax, g.const(a["relax"].reshape(2, -1))))
    flow = g.reshape(flow, [-1, 2, grid, grid])
    q = wm.grid_xy(size, grid).astype(np.float32)
    fx, fy = g.col(flow, 0), g.col(flow, 1)  # (B, 1, G, G)
    px = g.add(fx, g.const(q[0][None, None]))
    py = g.add(fy, g.const(q[1][None, None]))
    depth = g.const(a["depth"][None, None])
    dx, dy = G.pose(
        g,
        c,
        (px, py),
        depth,
        g.const(a["pose_weight"][None, None]),
        a["pivot"].astype(np.float64),
        size,
    )
    forward = g.op("Concat", g.add(fx, dx), g.add(fy, dy), axis=1)
    g.shapes[forward] = (grid, grid)
    return forward


def _inverse_displacement(g: G.Graph, forward: str, size: int, grid: int) -> str:
    """Backward displacement (B, 2, G, G): first-order inverse + one fixed-point step."""
    q = wm.grid_xy(size, grid).astype(np.float32)
    x0 = g.op("Squeeze", g.sub(g.const(q[0][None, None]), g.col(forward, 0)), g.const([1]))
    y0 = g.op("Squeeze", g.sub(g.const(q[1][None, None]), g.col(forward, 1)), g.const([1]))
    return G.sample(g, forward, x0, y0, size)


def _sampling_maps(g: G.Graph, back: str, size: int, grid: int) -> XY:
    """The backward displacement upsampled to the frame -> source x, y (B, S, S)."""
    scales = g.const(np.array([1.0, 1.0, size / grid, size / grid], np.float32))
    up = g.op(
        "Resize", back, "", scales, mode="linear", coordinate_transformation_mode="half_pixel"
    )
    ident = wm.identity_map(size)
    sx = g.sub(g.const(ident[0][None]), g.op("Squeeze", g.col(up, 0), g.const([1])))
    sy = g.sub(g.const(ident[1][None]), g.op("Squeeze", g.col(up, 1), g.const([1])))
    return sx, sy


def _warp(g: G.Graph, pack: AvatarPack, batch: str, src: XY, m: M.Mouth) -> str:
    """The portrait, with the lip fill (``lipfill``) mixed in as the lips meet
    (``M.fill_weight``), sampled at ``src``: (B, 3, S, S)."""
    size = pack.size
    shape = g.op("Concat", batch, g.const(np.array([3, size, size], np.int64)), axis=0)
    image = g.op("Expand", g.const(np.moveaxis(pack.image.astype(np.float32), -1, 0)[None]), shape)
    fill = lipfill.lip_fill(pack.image, pack.arrays["landmarks"])
    if fill is not None:
        # Only the fill's box is stored; Pad makes it a whole frame's delta at run time.
        (x0, y0, x1, y1), box = fill
        pads = np.array([0, 0, y0, x0, 0, 0, size - y1, size - x1], np.int64)
        delta = g.op("Pad", g.const(np.moveaxis(box, -1, 0)[None]), g.const(pads))
        weight = M.fill_weight(g, m, float(pack.arrays["mouth_shape"][0]))
        image = g.add(image, g.mul(weight, delta))
    g.shapes[image] = (size, size)
    return G.sample(g, image, src[0], src[1], size)


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
    one = g.scalar(1.0)
    b = g.add(right, g.mul(g.col(sampled, eyelid.SIDE), g.sub(left, right)))
    e = g.sub(g.mul(b, g.const(np.float32(eyelid.REACH))), g.col(sampled, eyelid.V))
    edge = g.div(g.mul(e, g.col(sampled, eyelid.GAP)), g.const(np.float32(2 * eyelid.EDGE_SOFT_PX)))
    alpha = g.clip(g.add(edge, g.const(np.float32(0.5))), 0.0, 1.0)
    alpha = g.mul(alpha, g.clip(g.div(b, g.const(np.float32(eyelid.FADE_IN))), 0.0, 1.0))
    alpha = g.mul(alpha, g.col(sampled, eyelid.MASK))
    lash = g.clip(g.sub(one, g.div(e, g.const(np.float32(eyelid.LASH_WIDTH)))), 0.0, 1.0)
    shade = g.sub(one, g.mul(lash, g.const(np.float32(eyelid.LASH_DARK))))
    rgb = g.op("Slice", sampled, g.const([0]), g.const([3]), g.const([1]))
    return g.over(warped, g.mul(rgb, shade), alpha)


def _model(g: G.Graph, pack: AvatarPack, frame: str) -> onnx.ModelProto:
    """Round ``frame`` (B, 3, S, S) to the graph's uint8 output (B, S, S, 3) and wrap it."""
    out = g.op("Cast", g.clip(g.op("Round", frame), 0.0, 255.0), to=TensorProto.UINT8)
    g.nodes.append(helper.make_node("Transpose", [out], ["frames"], perm=[0, 2, 3, 1]))
    size = pack.size
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
            "grid": str(pack.grid),
            "channels": ",".join(pack.meta.get("channels", []) or []),
        },
    )
    return model


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
