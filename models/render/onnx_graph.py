"""A minimal ONNX graph builder and the warp renderer's shared graph pieces.

Every op returns the name of its output. The pieces mirror ``warp_math``: bilinear
sampling at frame-pixel coordinates rounded to 1/SUBPIXEL (as ``cv2.remap``), the
pose rotation and the rigid head displacement.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from headcast.models.render import warp_math as wm


class Graph:
    """Minimal builder: every op returns the name of its (single) output."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.shapes: dict[str, tuple[int, int]] = {}  # (H, W) of the fields that get sampled
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value: np.ndarray | np.generic | float | list[int], hint: str = "c") -> str:
        arr = np.asarray(value)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, *inputs: str, hint: str | None = None, **attrs: Any) -> str:
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def ops(self, op_type: str, inputs: list[str], n_out: int, **attrs: Any) -> list[str]:
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, **attrs))
        return outs

    # small conveniences
    def add(self, a: str, b: str) -> str:
        return self.op("Add", a, b)

    def sub(self, a: str, b: str) -> str:
        return self.op("Sub", a, b)

    def mul(self, a: str, b: str) -> str:
        return self.op("Mul", a, b)

    def div(self, a: str, b: str) -> str:
        return self.op("Div", a, b)

    def col(self, x: str, index: int, axis: int = 1) -> str:
        """Keep-dims slice x[..., index:index+1, ...] along ``axis``."""
        return self.op("Slice", x, self.const([index]), self.const([index + 1]), self.const([axis]))

    def clip(self, x: str, lo: float, hi: float) -> str:
        return self.op("Clip", x, self.const(np.float32(lo)), self.const(np.float32(hi)))

    def reshape(self, x: str, shape: list[int]) -> str:
        return self.op("Reshape", x, self.const(np.array(shape, np.int64)))

    def scalar(self, value: float) -> str:
        return self.const(np.float32(value))

    def over(self, base: str, top: str, alpha: str) -> str:
        """``base * (1 - alpha) + top * alpha``."""
        return self.add(self.mul(base, self.sub(self.scalar(1.0), alpha)), self.mul(top, alpha))


def sample(g: Graph, field: str, x: str, y: str, size: int) -> str:
    """GridSample ``field`` (B, C, H, W) at frame-pixel coords x, y (B, h, w) of a size-S frame."""
    # Sampling positions in the field's own pixels, rounded to 1/SUBPIXEL (as cv2.remap).
    h, w = field_hw(g, field)
    gx = quant(
        g,
        g.sub(
            g.mul(g.add(x, g.const(np.float32(0.5))), g.const(np.float32(w / size))),
            g.const(np.float32(0.5)),
        ),
    )
    gy = quant(
        g,
        g.sub(
            g.mul(g.add(y, g.const(np.float32(0.5))), g.const(np.float32(h / size))),
            g.const(np.float32(0.5)),
        ),
    )
    return sample_texels(g, field, gx, gy, h, w)


def quant(g: Graph, x: str) -> str:
    k = g.const(np.float32(wm.SUBPIXEL))
    return g.div(g.op("Round", g.mul(x, k)), k)


def sample_texels(g: Graph, field: str, gx: str, gy: str, h: int, w: int) -> str:
    """GridSample ``field`` (B, C, h, w) at its own pixel coords gx, gy (B, ...), clamped to the edge.

    Clamping first makes ``border`` padding exact and keeps align_corners=0 math simple.
    """
    gx = g.clip(gx, 0.0, w - 1.0)
    gy = g.clip(gy, 0.0, h - 1.0)
    nx = g.sub(
        g.mul(g.add(gx, g.const(np.float32(0.5))), g.const(np.float32(2.0 / w))),
        g.const(np.float32(1.0)),
    )
    ny = g.sub(
        g.mul(g.add(gy, g.const(np.float32(0.5))), g.const(np.float32(2.0 / h))),
        g.const(np.float32(1.0)),
    )
    grid = g.op(
        "Concat", g.op("Unsqueeze", nx, g.const([3])), g.op("Unsqueeze", ny, g.const([3])), axis=3
    )
    return g.op("GridSample", field, grid, mode="bilinear", padding_mode="border", align_corners=0)


def field_hw(g: Graph, field: str) -> tuple[int, int]:
    return g.shapes[field]


def rotation(g: Graph, c: str) -> list[list[str]]:
    """Rz(roll) Rx(pitch) Ry(yaw) entries, each (B, 1, 1, 1), from prepared coefficients."""
    deg = g.const(np.float32(np.pi / 180.0))
    yaw, pitch, roll = (
        g.reshape(g.mul(g.col(c, wm.YAW + i), deg), [-1, 1, 1, 1]) for i in range(3)
    )
    cy, sy = g.op("Cos", yaw), g.op("Sin", yaw)
    cp, sp = g.op("Cos", pitch), g.op("Sin", pitch)
    cr, sr = g.op("Cos", roll), g.op("Sin", roll)
    neg = g.const(np.float32(-1.0))
    zero = g.mul(cy, g.const(np.float32(0.0)))
    # Rx @ Ry (see warp_math.rotation)
    a = [
        [cy, zero, sy],
        [g.mul(g.mul(neg, sp), sy), cp, g.mul(sp, cy)],
        [g.mul(g.mul(neg, cp), sy), g.mul(neg, sp), g.mul(cp, cy)],
    ]
    # Rz @ (Rx @ Ry)
    r: list[list[str]] = [[zero] * 3 for _ in range(3)]
    for j in range(3):
        r[0][j] = g.sub(g.mul(cr, a[0][j]), g.mul(sr, a[1][j]))
        r[1][j] = g.add(g.mul(sr, a[0][j]), g.mul(cr, a[1][j]))
        r[2][j] = a[2][j]
    return r


def pose(
    g: Graph, c: str, xy: tuple[str, str], z: str, weight: str | None, pivot: np.ndarray, size: int
) -> tuple[str, str]:
    """Pose displacement (dx, dy) of points at xy (B, ...) with depth z, like ``pose_displace``."""
    r = rotation(g, c)
    rel = [
        g.sub(xy[0], g.const(np.float32(pivot[0]))),
        g.sub(xy[1], g.const(np.float32(pivot[1]))),
        g.sub(z, g.const(np.float32(pivot[2]))),
    ]
    sz = g.const(np.float32(size))
    shifts = [g.reshape(g.mul(g.col(c, wm.TX + i), sz), [-1, 1, 1, 1]) for i in range(2)]
    out = []
    for i in range(2):
        moved = g.add(g.add(g.mul(r[i][0], rel[0]), g.mul(r[i][1], rel[1])), g.mul(r[i][2], rel[2]))
        d = g.sub(g.add(g.add(moved, g.const(np.float32(pivot[i]))), shifts[i]), xy[i])
        out.append(d if weight is None else g.mul(d, weight))
    return out[0], out[1]
