"""``enroll``: portrait -> avatar pack (landmarks, aligned frame, flow bases, textures).

Steps: load (bounded memory) -> 478 landmarks (MediaPipe) -> align the head
frame -> author every channel's landmark displacement in face units -> dense
flow on a GRID x GRID field -> orthogonalise the expression bank against the
mouth bank (EDTalk, arXiv 2404.01647: disentangled bases) -> fold-over check
-> pose depth and weights -> mouth textures -> save. Packs are cached by the
portrait's content hash and the enrollment parameters.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from headcast.models.avatar import landmarks as L
from headcast.models.avatar import mouth_motion as M
from headcast.models.avatar.align import apply_alignment
from headcast.models.avatar.authoring import landmark_displacements
from headcast.models.avatar.bases import (
    GRID,
    Densifier,
    HeadEllipse,
    densify_channels,
    depth_field,
    field_jacobian_min,
    folded_triangles,
    jacobian,
    pose_weight,
    unfold,
)
from headcast.models.avatar.errors import AvatarError, EnrollError
from headcast.models.avatar.face_geometry import FaceGeometry, across_the_slit
from headcast.models.avatar.image_io import load_portrait
from headcast.models.avatar.mouth import mouth_frame, mouth_textures
from headcast.models.avatar.orient import detect_upright
from headcast.models.avatar.pack import PACK_VERSION, AvatarPack, read_meta
from headcast.models.avatar.relax import portrait_smile, relax, relax_seal
from headcast.models.channels import (
    CHANNEL_INDEX,
    EXPRESSION_CHANNELS,
    MOUTH_CHANNELS,
    NUM_CHANNELS,
    POSE_ANGLE_LIMIT_DEG,
    POSE_CHANNELS,
)
from headcast.models.sizes import PACK_SIZES

log = logging.getLogger(__name__)

SIZES = PACK_SIZES
MAX_FOLD_RETRIES = 6
FOLD_SHRINK = 0.8
MAX_RESTORE_GAIN = 2.5  # at most this much of a projected channel's lost norm is restored
POSE_CHECKS = tuple(
    (CHANNEL_INDEX[name], sign * POSE_ANGLE_LIMIT_DEG)
    for name in POSE_CHANNELS[:2]  # headYaw, headPitch
    for sign in (1.0, -1.0)
)
UNFOLD_ROUNDS = 8  # relax-and-reproject rounds per channel before weakening it
# Gaussian sigmas (flow-grid cells) tried on the depth field, in order, until the pose
# range turns the head without folding it (Jacobian at least MIN_POSE_JACOBIAN).
DEPTH_BLUR_CELLS = (0.0, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
MIN_POSE_JACOBIAN = 0.1
MIN_JACOBIAN = 0.05  # the flow's Jacobian determinant must stay above this (0 = a fold)
# Blinks are drawn by the renderer's lid layer (``models.render.eyelid``); their forward
# fields are never rendered, so they are not tested for folds.
BACKWARD_DRAWN = frozenset(
    (MOUTH_CHANNELS + EXPRESSION_CHANNELS).index(n) for n in ("eyeBlinkLeft", "eyeBlinkRight")
)

Progress = Callable[[float, str], None]


def _noop(_: float, __: str) -> None:
    pass


def _project_out_mouth(fields: np.ndarray, disp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Orthogonalise expression fields against the span of mouth fields; apply the same
    linear combination to the landmark displacements so the lip ring stays consistent."""
    nm = len(MOUTH_CHANNELS)
    m = fields[:nm].reshape(nm, -1).astype(np.float64).T  # (P, Cm)
    e = fields[nm:].reshape(len(fields) - nm, -1).astype(np.float64).T  # (P, Ce)
    coef = np.zeros((nm, e.shape[1]))
    for _ in range(2):  # a second pass removes float64 round-off
        step, *_ = np.linalg.lstsq(m, e, rcond=None)
        e = e - m @ step
        coef += step
    # Removing the mouth span shrinks channels that share the mouth region (a smile
    # keeps ~20 % of its norm); restore part of the strength so presets stay visible.
    before = np.linalg.norm(fields[nm:].reshape(len(fields) - nm, -1).astype(np.float64), axis=1)
    after = np.linalg.norm(e, axis=0)
    gain = np.clip(before / np.maximum(after, 1e-9), 1.0, MAX_RESTORE_GAIN)
    out_fields = fields.copy()
    out_fields[nm:] = (e * gain).T.reshape(fields[nm:].shape).astype(np.float32)
    out_disp = disp.copy()
    out_disp[nm:] = (disp[nm:] - np.einsum("mc,mij->cij", coef, disp[:nm])) * gain[:, None, None]
    return out_fields, out_disp


def _unfold_channels(
    fields: np.ndarray,
    disp: np.ndarray,
    points: np.ndarray,
    triangles: np.ndarray,
    dens: Densifier,
    size: int,
    channels: range,
) -> None:
    """Relax, in place, the landmark motion of ``channels`` where it folds the mesh or
    the dense field, and rebuild their fields from it. Expression channels are
    projected off the mouth span again afterwards (a local change, so the projection
    moves them little)."""
    nm = len(MOUTH_CHANNELS)
    jaw = CHANNEL_INDEX["jawOpen"]
    xy = points[:, :2].astype(np.float64)
    mouth = fields[:nm].reshape(nm, -1).astype(np.float64).T
    qr: list[np.ndarray] = []  # the mouth span's QR, computed when first needed
    g = fields.shape[-1]
    cell = np.clip(((xy + 0.5) * g / size - 0.5).round().astype(int), 0, g - 1)

    def field_folds(d: np.ndarray) -> np.ndarray:
        bad = jacobian(dens(d), size) <= MIN_JACOBIAN
        if not bad.any():
            return np.zeros(len(d), bool)
        near = cv2.dilate(bad.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        return near[cell[:, 1], cell[:, 0]]

    for k in channels:
        if k in BACKWARD_DRAWN:
            continue
        with_jaw = k == CHANNEL_INDEX["mouthClose"]  # rendered on top of jawOpen
        base = disp[jaw] if with_jaw else 0.0
        for _ in range(UNFOLD_ROUNDS):
            field = fields[k] + fields[jaw] if with_jaw else fields[k]
            if not _folds(field, disp[k] + base, xy, triangles, size):
                break
            fixed, _ = unfold(xy, disp[k] + base, triangles, size, field_folds)
            disp[k] = fixed - base
            fields[k] = dens(disp[k])
            if k >= nm:
                if not qr:
                    qr.extend(np.linalg.qr(mouth))
                q, r = qr
                step = np.linalg.solve(r, q.T @ fields[k].reshape(-1).astype(np.float64))
                fields[k] -= (mouth @ step).reshape(fields[k].shape).astype(np.float32)
                disp[k] -= np.einsum("m,mij->ij", step, disp[:nm])


def _folds(f: np.ndarray, d: np.ndarray, xy: np.ndarray, triangles: np.ndarray, size: int) -> bool:
    return (
        folded_triangles(xy, d, triangles, size) > 0 or field_jacobian_min(f, size) <= MIN_JACOBIAN
    )


def _fold_safe(
    fields: np.ndarray, disp: np.ndarray, points: np.ndarray, triangles: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Weaken any channel whose full activation folds the landmark mesh or the flow field.

    A channel that still folds at the weakest strength tried is switched off for this
    face (strength 0, recorded in the pack's ``channel_scales``) rather than refusing
    the portrait: one odd expression must not cost the user their avatar.
    """
    names = MOUTH_CHANNELS + EXPRESSION_CHANNELS
    jaw = CHANNEL_INDEX["jawOpen"]
    scales: dict[str, float] = {}
    xy = points[:, :2].astype(np.float64)
    for k, name in enumerate(names):
        if k in BACKWARD_DRAWN:
            continue
        scale = 1.0
        for _ in range(MAX_FOLD_RETRIES):
            d = disp[k] * scale
            f = fields[k] * scale
            if name == "mouthClose":  # only meaningful together with jawOpen (capped by it)
                d = d + disp[jaw]
                f = f + fields[jaw]
            if not _folds(f, d, xy, triangles, size):
                break
            scale *= FOLD_SHRINK
        else:
            log.warning(
                "channel %s folds over on this face even at %.2f strength; off", name, scale
            )
            scale = 0.0
        if scale < 1.0:
            fields[k] *= scale
            disp[k] *= scale
            scales[name] = round(scale, 3)
    return fields, disp, scales


def _relax_fields(
    points: np.ndarray, dens: Densifier, triangles: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """The smile relax of each side (:mod:`models.avatar.relax`) as flow fields
    float32 (2, 2, G, G) and lip-ring-ready landmark motion (2, 478, 2), weakened until
    neither side alone nor both together fold; -> (fields, motion, strength kept)."""
    disp = np.stack([relax(points, left=True), relax(points, left=False)])
    fields = densify_channels(disp, dens)
    xy = points[:, :2].astype(np.float64)
    scale = 1.0
    for _ in range(MAX_FOLD_RETRIES):
        parts = [(fields[0], disp[0]), (fields[1], disp[1]), (fields.sum(0), disp.sum(0))]
        if not any(_folds(f * scale, d * scale, xy, triangles, size) for f, d in parts):
            break
        scale *= FOLD_SHRINK
    else:
        scale = 0.0
    return (fields * scale).astype(np.float32), disp * scale, round(scale, 3)


def _fold_free_depth(
    depth: np.ndarray, weight: np.ndarray, pivot: np.ndarray, size: int
) -> tuple[np.ndarray, float]:
    """Smooth the depth field until the head turns and nods of the pose range do not fold.

    Where the depth falls steeply (the cheek's outline, hair over it) a turn moves
    neighbouring points by very different amounts: at yaw 20 the far cheek folded into
    a serrated edge. -> (float32 (G, G) depth, the Gaussian sigma used in grid cells).
    """
    from headcast.models.render.warp_math import grid_xy, pose_displace

    g = depth.shape[-1]
    xy = grid_xy(size, g).astype(np.float32)
    c = np.zeros(NUM_CHANNELS, np.float32)
    out, used = depth, 0.0
    for sigma in DEPTH_BLUR_CELLS:
        out = depth if sigma == 0 else cv2.GaussianBlur(depth, (0, 0), sigma)
        used = sigma
        worst = np.inf
        for k, angle in POSE_CHECKS:
            c[:] = 0.0
            c[k] = angle
            field = pose_displace(xy, out, weight, c, pivot, size)
            worst = min(worst, float(jacobian(field, size).min()))
        if worst >= MIN_POSE_JACOBIAN:
            break
    return out.astype(np.float32), float(used)


# Bumped when enrollment makes a different pack from the same portrait (new textures,
# new authored motion) without the pack format changing: cached packs are then rebuilt.
ENROLL_REVISION = 11


def portrait_hash(data: bytes, size: int) -> str:
    h = hashlib.sha256()
    h.update(data)
    h.update(f"size={size};grid={GRID};version={PACK_VERSION};rev={ENROLL_REVISION}".encode())
    return h.hexdigest()


def build_pack(image: np.ndarray, size: int = 512, progress: Progress = _noop) -> AvatarPack:
    """uint8 (H, W, 3) RGB portrait -> an :class:`AvatarPack` with a size x size head frame."""
    if size not in SIZES:
        raise EnrollError(f"size must be one of {SIZES}, got {size}")
    t0 = time.perf_counter()
    progress(0.05, "finding the face")
    image, det = detect_upright(image)
    progress(0.35, "aligning the head frame")
    frame, points, matrix = apply_alignment(image, det.points, size)
    progress(0.45, "authoring channel motion")
    disp = landmark_displacements(points).astype(np.float64)
    head = HeadEllipse.of(points)
    dens = Densifier(points, head, size)
    # The mouth's opening is not skin: its triangles are not tested for folds, and the
    # relaxation of a fold does not blend the lips' motions across it.
    triangles = dens.landmark_triangles()
    triangles = triangles[~across_the_slit(FaceGeometry.of(points), triangles)]
    nm = len(MOUTH_CHANNELS)
    fields = densify_channels(disp, dens)
    _unfold_channels(fields, disp, points, triangles, dens, size, range(nm))
    fields, disp = _project_out_mouth(fields, disp)
    progress(0.65, "checking for fold-overs")
    _unfold_channels(fields, disp, points, triangles, dens, size, range(nm, len(disp)))
    fields, disp, scales = _fold_safe(fields, disp, points, triangles, size)
    seal = M.lip_seal(FaceGeometry.of(points))
    relax_flow, relax_disp, relax_kept = _relax_fields(points, dens, triangles, size)
    progress(0.75, "pose depth and mouth textures")
    depth, center_z = depth_field(points, head, dens, size)
    pivot = np.array([head.cx, head.cy + 0.25 * head.ay_bottom, center_z], np.float32)
    depth, depth_blur = _fold_free_depth(depth, pose_weight(head, size), pivot, size)
    ring_idx = list(L.LIPS_INNER)
    ring = points[ring_idx, :2].astype(np.float64)
    origin, _, v, width = mouth_frame(ring)
    i_lo = L.LIPS_INNER.index(L.LOWER_INNER_MID)
    i_cr, i_cl = L.LIPS_INNER.index(L.INNER_CORNER_R), L.LIPS_INNER.index(L.INNER_CORNER_L)
    rest_gap = float((ring[i_lo] - origin) @ v)
    upper_curve = float(((0.5 * (ring[i_cr] + ring[i_cl])) - origin) @ v) / width
    mouth, own_teeth = mouth_textures(frame, points)
    arrays = {
        "landmarks": points.astype(np.float32),
        "bases": fields.astype(np.float32),
        "lip_points": ring.astype(np.float32),
        "lip_bases": disp[:, ring_idx, :].astype(np.float32),
        "lip_depth": points[ring_idx, 2].astype(np.float32),
        "seal": dens(seal).astype(np.float32),
        "seal_lip": seal[ring_idx].astype(np.float32),
        "relax": relax_flow,
        "relax_lip": relax_disp[:, ring_idx, :].astype(np.float32),
        "relax_seal": relax_seal(points) * np.float32(relax_kept),
        "pose_weight": pose_weight(head, size),
        "depth": depth,
        "pivot": pivot,
        **mouth,
        "mouth_shape": np.array([rest_gap, upper_curve], np.float32),
        "portrait_matrix": matrix.astype(np.float64),
    }
    meta = {
        "faces_found": 1 + det.others,
        "channel_scales": scales,
        "channels_off": sorted(name for name, scale in scales.items() if scale == 0.0),
        "own_teeth": own_teeth,
        "smile": portrait_smile(points),
        "smile_relax_strength": relax_kept,
        "head_ellipse": [head.cx, head.cy, head.ax, head.ay_top, head.ay_bottom],
        "depth_blur_cells": depth_blur,
        "enroll_seconds": round(time.perf_counter() - t0, 3),
    }
    progress(0.95, "saving")
    return AvatarPack(image=frame, arrays=arrays, meta=meta, portrait=image)


def enroll(
    image: str | Path | bytes,
    out_dir: str | Path,
    size: int = 512,
    progress: Progress | None = None,
    force: bool = False,
) -> Path:
    """Portrait file or bytes -> avatar pack folder ``out_dir`` (reused when already enrolled).

    Raises :class:`EnrollError` with a readable reason for bad input.
    """
    report = progress or _noop
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise EnrollError(f"{out}: exists and is not a folder; give a folder for the pack")
    data = image if isinstance(image, bytes) else _read_bytes(Path(image))
    digest = portrait_hash(data, size)
    if not force and (out / "avatar.json").is_file():
        try:
            meta = read_meta(out)
        except AvatarError:
            meta = {}
        if meta.get("source_sha256") == digest:
            report(1.0, "already enrolled (cached)")
            return out
        other = meta.get("source_name")
        if not isinstance(image, bytes) and other and other != Path(image).name:
            raise EnrollError(
                f"{out} holds the avatar of {other}; give another folder, or --force to "
                "replace it"
            )
    report(0.0, "loading the portrait")
    portrait = load_portrait(data, "portrait" if isinstance(image, bytes) else str(image))
    pack = build_pack(portrait, size=size, progress=report)
    if pack.meta["faces_found"] > 1:
        log.warning("%d faces in the portrait; enrolled the largest", pack.meta["faces_found"])
    if pack.meta["channels_off"]:
        log.warning("switched off on this face: %s", ", ".join(pack.meta["channels_off"]))
    pack.meta["source_sha256"] = digest
    if not isinstance(image, bytes):
        pack.meta["source_name"] = Path(image).name
    pack.save(out)
    report(1.0, "done")
    return out


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise EnrollError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise EnrollError(f"{path} is a folder, not an image") from exc
    except OSError as exc:
        raise EnrollError(f"{path}: cannot read ({exc.strerror})") from exc
