"""Dense flow bases from landmark displacements; head mask, depth; disentanglement checks.

Grid convention: a (G, G) field over an (S, S) frame has its sample (i, j) at
pixel ((j + 0.5) * S / G - 0.5, (i + 0.5) * S / G - 0.5) (half-pixel centres, as
``cv2.resize`` and ONNX ``Resize(half_pixel)``). Flow values are head-frame pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.spatial import Delaunay

from headcast.models.avatar import landmarks as L

GRID = 128  # flow resolution; upsampled to the frame when rendering
ANCHORS_ON_RING = 48


@dataclass(frozen=True)
class HeadEllipse:
    """The head (face, hair, ears) as an ellipse in frame pixels; top/bottom semi-axes differ."""

    cx: float
    cy: float
    ax: float
    ay_top: float
    ay_bottom: float

    @classmethod
    def of(cls, points: np.ndarray) -> HeadEllipse:
        xy = points[:, :2]
        oval = xy[list(L.FACE_OVAL)]
        face_h = float(np.linalg.norm(xy[L.FOREHEAD_TOP] - xy[L.CHIN]))
        width = float(oval[:, 0].max() - oval[:, 0].min())
        cy = float(xy[L.NOSE_TIP, 1]) - 0.12 * face_h
        return cls(
            cx=float(oval[:, 0].mean()),
            cy=cy,
            ax=0.5 * width * 1.32,
            ay_top=(cy - float(xy[L.FOREHEAD_TOP, 1])) + 0.34 * face_h,
            ay_bottom=(float(xy[L.CHIN, 1]) - cy) + 0.32 * face_h,
        )

    def radius(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Normalised elliptic radius: 1 on the ellipse."""
        ay = np.where(y < self.cy, self.ay_top, self.ay_bottom)
        return np.sqrt(((x - self.cx) / self.ax) ** 2 + ((y - self.cy) / ay) ** 2)

    def ring(self, scale: float, n: int) -> np.ndarray:
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        ay = np.where(np.sin(t) < 0, self.ay_top, self.ay_bottom)
        return np.stack(
            [self.cx + scale * self.ax * np.cos(t), self.cy + scale * ay * np.sin(t)], 1
        )


# Mouth and expression motion stays inside this elliptic radius (exactly zero beyond);
# pose weight is 1 inside POSE_INNER and falls to 0 at POSE_OUTER.
FLOW_SUPPORT = 1.0
# Still anchors under the jaw (see neck_anchors): this far below the chin, on the arc's
# part lower than NECK_RISE face heights above the chin.
NECK_GAP = 0.18
NECK_RISE = 0.05
POSE_INNER, POSE_OUTER = 0.78, 1.22


def grid_points(size: int, grid: int = GRID) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (x, y) of the grid samples, each float64 (grid, grid)."""
    c = (np.arange(grid) + 0.5) * size / grid - 0.5
    gx, gy = np.meshgrid(c, c)
    return gx, gy


def _locate(
    nodes: np.ndarray, simplices: np.ndarray, size: int, grid: int
) -> tuple[np.ndarray, np.ndarray]:
    """Which triangle holds each grid sample, and its barycentric weights.

    -> (int (G*G,) triangle index or -1, float64 (G*G, 3)). Each triangle visits only
    the samples in its bounding box. (scipy's ``find_simplex`` first builds every
    simplex's barycentric transform, which measured 0.7 s of CPU on this mesh.)
    """
    c = (np.arange(grid) + 0.5) * size / grid - 0.5
    owner = np.full(grid * grid, -1, np.int64)
    bary = np.zeros((grid * grid, 3))
    corners = nodes[simplices]  # (T, 3, 2)
    a, b, cc = corners[:, 0], corners[:, 1], corners[:, 2]
    det = (b[:, 0] - a[:, 0]) * (cc[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (cc[:, 0] - a[:, 0])
    lo = np.searchsorted(c, corners.min(axis=1) - 1e-9)
    hi = np.searchsorted(c, corners.max(axis=1) + 1e-9)
    eps = -1e-9
    for t in np.flatnonzero(np.abs(det) > 1e-12):
        (x0, y0), (x1, y1) = lo[t], hi[t]
        if x1 <= x0 or y1 <= y0:
            continue
        dx = c[None, x0:x1] - a[t, 0]  # (1, w), broadcast against (h, 1)
        dy = c[y0:y1, None] - a[t, 1]
        l1 = (dx * (cc[t, 1] - a[t, 1]) - dy * (cc[t, 0] - a[t, 0])) / det[t]
        l2 = (dy * (b[t, 0] - a[t, 0]) - dx * (b[t, 1] - a[t, 1])) / det[t]
        l0 = 1.0 - l1 - l2
        flat = (np.arange(y0, y1)[:, None] * grid + np.arange(x0, x1)[None, :]).ravel()
        hit = ((l0 >= eps) & (l1 >= eps) & (l2 >= eps)).ravel() & (owner[flat] < 0)
        owner[flat[hit]] = t
        bary[flat[hit]] = np.stack([l0.ravel(), l1.ravel(), l2.ravel()], 1)[hit]
    return owner, bary


def neck_anchors(points: np.ndarray, head: HeadEllipse) -> np.ndarray:
    """float (K, 2): still points on an arc NECK_GAP face heights below the chin, under
    the jaw line. The jaw's motion fades out between the chin and them, so a collar or
    shoulder line below the jaw stays where it is (with only the ring at the head
    ellipse, a third of a face height down, it bent with the chin)."""
    xy = points[:, :2]
    face_h = float(np.linalg.norm(xy[L.FOREHEAD_TOP] - xy[L.CHIN]))
    chin_y = float(xy[L.CHIN, 1])
    arc = HeadEllipse(head.cx, head.cy, head.ax, head.ay_top, chin_y + NECK_GAP * face_h - head.cy)
    pts = arc.ring(1.0, ANCHORS_ON_RING)
    return pts[pts[:, 1] > chin_y - NECK_RISE * face_h]


class Densifier:
    """Piecewise-linear interpolation from landmarks (+ zero anchors) onto the grid.

    The triangulation and barycentric weights are computed once per avatar and
    reused for every channel.
    """

    def __init__(self, points: np.ndarray, head: HeadEllipse, size: int, grid: int = GRID) -> None:
        ring = np.concatenate(
            [head.ring(FLOW_SUPPORT, ANCHORS_ON_RING), neck_anchors(points, head)]
        )
        s = float(size)
        frame = np.array(
            [[-1, -1], [s, -1], [-1, s], [s, s], [s / 2, -1], [s / 2, s], [-1, s / 2], [s, s / 2]]
        )
        # The iris is a layer under the lids, not part of the skin: its points would tie
        # the lids to the eyeball and fold the field wherever a lid slides over it.
        self.node_ids = np.setdiff1d(np.arange(len(points)), np.array(L.IRIS_L + L.IRIS_R))
        self.n_landmarks = len(self.node_ids)
        nodes = np.concatenate([points[self.node_ids, :2].astype(np.float64), ring, frame])
        self.tri = Delaunay(nodes)
        gx, gy = grid_points(size, grid)
        simplex, self.bary = _locate(nodes, self.tri.simplices, size, grid)
        inside = simplex >= 0
        self.bary = self.bary[inside]
        self.vertices = self.tri.simplices[simplex[inside]]
        self.inside = inside
        self.grid = grid
        self.support = head.radius(gx, gy) < FLOW_SUPPORT

    def landmark_triangles(self) -> np.ndarray:
        """int (T, 3): the triangles whose corners are all landmarks, as landmark indices."""
        simplices = self.tri.simplices[(self.tri.simplices < self.n_landmarks).all(axis=1)]
        return self.node_ids[simplices]

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """float (478, C) landmark values -> float32 (C, grid, grid); zero at the anchors."""
        n_extra = self.tri.points.shape[0] - self.n_landmarks
        full = np.concatenate([values[self.node_ids], np.zeros((n_extra, values.shape[1]))])
        out = np.zeros((self.grid * self.grid, values.shape[1]))
        out[self.inside] = np.einsum("nk,nkc->nc", self.bary, full[self.vertices])
        field = out.T.reshape(values.shape[1], self.grid, self.grid)
        return (field * self.support).astype(np.float32)


def densify_channels(disp: np.ndarray, dens: Densifier) -> np.ndarray:
    """float32 (C, 478, 2) -> float32 (C, 2, grid, grid)."""
    c = disp.shape[0]
    stacked = disp.transpose(1, 0, 2).reshape(disp.shape[1], c * 2)
    return dens(stacked).reshape(c, 2, dens.grid, dens.grid)


def pose_weight(head: HeadEllipse, size: int, grid: int = GRID) -> np.ndarray:
    """float32 (grid, grid) 0..1: how rigidly each point follows the head pose."""
    gx, gy = grid_points(size, grid)
    r = head.radius(gx, gy)
    t = np.clip((POSE_OUTER - r) / (POSE_OUTER - POSE_INNER), 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def depth_field(
    points: np.ndarray, head: HeadEllipse, dens: Densifier, size: int
) -> tuple[np.ndarray, float]:
    """Per-grid-point depth (pixels, larger = nearer) and the head's rotation-centre depth.

    Inside the face the landmarks' own depth; elsewhere an ellipsoid that meets
    the face at its outline, so hair and ears turn with the head.
    """
    gx, gy = grid_points(size, dens.grid)
    r = np.clip(head.radius(gx, gy), 0.0, 1.0)
    z_face = points[:, 2].astype(np.float64)
    depth_scale = 0.75 * head.ax
    base = float(np.percentile(z_face[list(L.FACE_OVAL)], 50)) - depth_scale * 0.6
    ellipsoid = base + depth_scale * np.sqrt(1.0 - r**2)
    # Interpolate the face's depth relative to the ellipsoid so the two blend smoothly.
    lx, ly = points[:, 0], points[:, 1]
    rl = np.clip(head.radius(lx, ly), 0.0, 1.0)
    rel = z_face - (base + depth_scale * np.sqrt(1.0 - rl**2))
    dens_rel = dens(rel[:, None])[0]
    center_z = base
    return (ellipsoid + dens_rel).astype(np.float32), center_z


def triangle_areas(xy: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Signed areas of triangles ``int (T, 3)`` over points ``(N, 2)``."""
    a, b, c = xy[triangles[:, 0]], xy[triangles[:, 1]], xy[triangles[:, 2]]
    return 0.5 * (
        (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    )


MIN_TRIANGLE_AREA = 2.0  # px^2 at a 512 frame; slivers below this have no reliable orientation
MIN_TRIANGLE_HEIGHT = 1.5  # px at a 512 frame: a triangle flatter than this is degenerate at rest


def degenerate_triangles(xy: np.ndarray, triangles: np.ndarray, size: int = 512) -> np.ndarray:
    """bool (T,): triangles with no reliable orientation at rest.

    The inner lips of a closed mouth (and the lid margins of a nearly closed eye)
    lie on top of each other: the triangles between them are slivers under a pixel
    high, whose sign flips with any motion at all. Counting them as fold-overs would
    condemn every channel that moves one lip, so they are left out; the field's
    Jacobian still sees any real fold there.
    """
    area = np.abs(triangle_areas(xy, triangles))
    corners = xy[triangles]
    edges = np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2).max(axis=1)
    height = 2.0 * area / np.maximum(edges, 1e-9)
    k = size / 512
    return (area <= MIN_TRIANGLE_AREA * k * k) | (height < MIN_TRIANGLE_HEIGHT * k)


def folded_triangles(
    xy: np.ndarray, disp: np.ndarray, triangles: np.ndarray, size: int = 512
) -> int:
    """How many triangles, not degenerate at rest, flip orientation when ``disp`` is applied."""
    before = triangle_areas(xy, triangles)
    after = triangle_areas(xy + disp, triangles)
    valid = ~degenerate_triangles(xy, triangles, size)
    return int(np.count_nonzero(valid & (np.sign(before) != np.sign(after))))


UNFOLD_ITERS = 60
Relax = Callable[[np.ndarray], np.ndarray]
"""float (N, 2) displacement -> bool (N,): further points to relax (e.g. where the dense field folds)."""


def unfold(
    xy: np.ndarray,
    disp: np.ndarray,
    triangles: np.ndarray,
    size: int = 512,
    also: Relax | None = None,
) -> tuple[np.ndarray, bool]:
    """Relax a displacement ``float (N, 2)`` where it folds; -> (displacement, fold-free).

    Each round moves the corners of flipped triangles (and the points ``also`` names)
    with their neighbours half-way to the mean displacement of their neighbours (a
    local Laplacian smoothing), so the channel keeps its motion everywhere else and
    its full strength. Slivers that are degenerate at rest take part in the
    smoothing, though their orientation is not tested.
    """
    valid = ~degenerate_triangles(xy, triangles, size)
    tri = triangles[valid]
    n = len(xy)
    pairs = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    adj = np.zeros((n, n), np.float64)
    adj[pairs[:, 0], pairs[:, 1]] = 1.0
    adj[pairs[:, 1], pairs[:, 0]] = 1.0
    degree = adj.sum(axis=1)
    has = degree > 0
    mean_op = adj / np.maximum(degree, 1.0)[:, None]
    d = np.array(disp, np.float64, copy=True)
    rest = np.sign(triangle_areas(xy, tri))

    def offenders(d: np.ndarray) -> np.ndarray:
        bad = np.sign(triangle_areas(xy + d, tri)) != rest
        out = np.zeros(n, bool)
        out[tri[bad].ravel()] = True
        if also is not None:
            out |= also(d)
        return out

    for _ in range(UNFOLD_ITERS):
        touched = offenders(d)
        if not touched.any():
            return d, True
        touched |= (adj @ touched) > 0
        touched &= has
        d[touched] = 0.5 * d[touched] + 0.5 * (mean_op[touched] @ d)
    return d, not offenders(d).any()


def jacobian(field: np.ndarray, size: int) -> np.ndarray:
    """float (G, G): Jacobian determinant of x -> x + field (< 0 means a fold)."""
    step = size / field.shape[-1]
    dux = np.gradient(field[0], axis=1) / step
    duy = np.gradient(field[0], axis=0) / step
    dvx = np.gradient(field[1], axis=1) / step
    dvy = np.gradient(field[1], axis=0) / step
    return (1 + dux) * (1 + dvy) - duy * dvx


def field_jacobian_min(field: np.ndarray, size: int) -> float:
    """Smallest Jacobian determinant of x -> x + field over the grid (< 0 means a fold)."""
    return float(jacobian(field, size).min())
