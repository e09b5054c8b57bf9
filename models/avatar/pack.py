"""Avatar packs: everything the renderer needs for one portrait, computed once at enrollment.

A pack is a folder::

    avatar.json   metadata (format version, size, grid, channel names, source hash, ...)
    image.png     the aligned head frame, uint8 (S, S, 3) RGB
    arrays.npz    numeric arrays (see :class:`AvatarPack`)
    portrait.jpg  the original portrait (for full-portrait output), optional

Serving a pack needs numpy, OpenCV and Pillow only: no mediapipe.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from headcast.models.avatar.errors import AvatarError, EnrollError
from headcast.models.channels import EXPRESSION_CHANNELS, MOUTH_CHANNELS
from headcast.models.paths import file_in_the_way

PACK_VERSION = 5  # 5: blinks drawn by the renderer's lid layer (no backward lid maps)
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_AVATAR_DIR = REPO_ROOT / "models" / "assets" / "avatars" / "default"
META_FILE, IMAGE_FILE, ARRAYS_FILE, PORTRAIT_FILE = (
    "avatar.json",
    "image.png",
    "arrays.npz",
    "portrait.jpg",
)

ARRAY_SPECS: dict[str, tuple[str, int]] = {
    # name: (dtype, ndim)
    "landmarks": ("float32", 2),  # (478, 3) frame pixels x, y and depth z (larger = nearer)
    "bases": ("float32", 4),  # (Cm + Ce, 2, G, G) flow per channel at full activation, pixels
    "lip_points": ("float32", 2),  # (20, 2) inner-lip ring at rest (LIPS_INNER order)
    "lip_bases": ("float32", 3),  # (Cm + Ce, 20, 2) the same channels' motion of that ring
    "lip_depth": ("float32", 1),  # (20,) depth of the ring
    "seal": ("float32", 3),  # (2, G, G) flow that closes the portrait's own rest opening, pixels
    "seal_lip": ("float32", 2),  # (20, 2) the same motion of the inner-lip ring
    "relax": ("float32", 4),  # (2 sides [left, right], 2, G, G) flow relaxing the portrait's smile
    "relax_lip": ("float32", 3),  # (2, 20, 2) the same motion of the inner-lip ring
    "relax_seal": ("float32", 1),  # (2,) lip-seal weight at a fully relaxed [left, right] smile
    "pose_weight": ("float32", 2),  # (G, G) 0..1 how rigidly a point follows the head
    "depth": ("float32", 2),  # (G, G) depth, pixels
    "pivot": ("float32", 1),  # (3,) head rotation centre x, y, z
    "teeth_upper": ("uint8", 3),  # (Ht, Wt, 4) RGBA, s across the mouth, t down from the upper lip
    "teeth_lower": ("uint8", 3),  # (Ht, Wt, 4) RGBA, s across, t up from the lower lip
    "cavity": ("float32", 1),  # (6,) RGB deep, RGB near the lips
    "mouth_shape": ("float32", 1),  # (2,) rest opening (px), upper-lip curvature (mouth widths)
    "portrait_matrix": ("float64", 2),  # (2, 3) portrait pixels -> frame pixels
}


@dataclass
class AvatarPack:
    """One enrolled portrait. ``size`` S is the head-frame side, ``grid`` G the flow resolution."""

    image: np.ndarray  # uint8 (S, S, 3) RGB
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)
    portrait: np.ndarray | None = None  # uint8 (H, W, 3) RGB original, optional

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    @property
    def grid(self) -> int:
        return int(self.arrays["bases"].shape[-1])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def save(self, out_dir: Path) -> Path:
        """Write the pack into ``out_dir``; EnrollError when it cannot be written there."""
        try:
            return self._save(out_dir)
        except OSError as exc:
            why = exc.strerror or str(exc)
            raise EnrollError(f"{out_dir}: cannot write the avatar pack here ({why})") from exc

    def _save(self, out_dir: Path) -> Path:
        """Write so that a reader never sees a half-written pack (a server lists avatars
        while one is enrolled): into a hidden sibling folder renamed into place, or, in
        an existing empty folder (a mounted volume), with its metadata last."""
        if out_dir.exists() and not out_dir.is_dir():
            raise EnrollError(f"{out_dir}: exists and is not a folder")
        if out_dir.is_dir() and not any(out_dir.iterdir()):
            try:
                self._write_files(out_dir)
            except BaseException:
                for item in out_dir.iterdir():
                    item.unlink(missing_ok=True)
                raise
            return out_dir
        if out_dir.is_dir() and not (out_dir / META_FILE).is_file():
            raise EnrollError(
                f"{out_dir}: a folder with other files in it; give a new or empty folder, "
                "or an avatar pack to replace"
            )
        blocker = file_in_the_way(out_dir.parent)
        if blocker is not None:
            raise EnrollError(f"{out_dir}: {blocker} is a file, not a folder")
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = _hidden_dir(out_dir, ".part")
        try:
            self._write_files(tmp)
            if out_dir.exists():
                _swap(out_dir, tmp)
            else:
                tmp.rename(out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out_dir

    def _write_files(self, folder: Path) -> None:
        np.savez_compressed(folder / ARRAYS_FILE, **self.arrays)
        _write_image(folder / IMAGE_FILE, self.image)
        if self.portrait is not None:
            _write_image(folder / PORTRAIT_FILE, self.portrait, [cv2.IMWRITE_JPEG_QUALITY, 95])
        meta = dict(
            self.meta,
            version=PACK_VERSION,
            size=self.size,
            grid=self.grid,
            channels=list(MOUTH_CHANNELS + EXPRESSION_CHANNELS),
        )
        (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def _hidden_dir(beside: Path, suffix: str) -> Path:
    """A new, uniquely named hidden folder next to ``beside`` (mode 755)."""
    folder = Path(tempfile.mkdtemp(prefix=f".{beside.name}.", suffix=suffix, dir=beside.parent))
    folder.chmod(0o755)
    return folder


def _swap(old_pack: Path, new_pack: Path) -> None:
    """Put ``new_pack`` where ``old_pack`` is; on failure the old pack stays in place."""
    aside = _hidden_dir(old_pack, ".old")
    try:
        old_pack.rename(aside)  # onto the empty folder just made: POSIX rename allows it
    except BaseException:
        aside.rmdir()
        raise
    try:
        new_pack.rename(old_pack)
    except BaseException:
        aside.rename(old_pack)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _write_image(path: Path, rgb: np.ndarray, params: list[int] | None = None) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params or []):
        raise OSError(f"could not write {path.name}")


def read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise AvatarError(
            f"{path} is not an avatar pack (no {META_FILE}); create one with `headcast enroll`"
        ) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise AvatarError(f"{path}/{META_FILE} is unreadable: {exc}") from exc
    if not isinstance(meta, dict):
        raise AvatarError(f"{path}/{META_FILE} is not a JSON object")
    return meta


def load_pack(path: str | Path | None = None) -> AvatarPack:
    """Load and validate a pack folder (``None``: the built-in default avatar)."""
    root = DEFAULT_AVATAR_DIR if path is None else Path(path)
    meta = read_meta(root)
    if meta.get("version") != PACK_VERSION:
        raise AvatarError(
            f"{root}: pack version {meta.get('version')} but this headcast reads {PACK_VERSION}; re-enroll the portrait"
        )
    if meta.get("channels") != list(MOUTH_CHANNELS + EXPRESSION_CHANNELS):
        raise AvatarError(
            f"{root}: pack channels differ from this headcast's; re-enroll the portrait"
        )
    bgr = cv2.imread(str(root / IMAGE_FILE), cv2.IMREAD_COLOR)
    if bgr is None:
        raise AvatarError(f"{root}/{IMAGE_FILE} is missing or unreadable")
    try:
        with np.load(root / ARRAYS_FILE, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError) as exc:
        raise AvatarError(f"{root}/{ARRAYS_FILE} is missing or corrupt: {exc}") from exc
    for name, (dtype, ndim) in ARRAY_SPECS.items():
        arr = arrays.get(name)
        if arr is None or arr.dtype != np.dtype(dtype) or arr.ndim != ndim:
            raise AvatarError(
                f"{root}: array {name!r} missing or malformed; re-enroll the portrait"
            )
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if image.shape[:2] != (meta.get("size"), meta.get("size")):
        raise AvatarError(
            f"{root}: image is {image.shape[1]}x{image.shape[0]}, metadata says {meta.get('size')}"
        )
    portrait = None
    if (root / PORTRAIT_FILE).is_file():
        pbgr = cv2.imread(str(root / PORTRAIT_FILE), cv2.IMREAD_COLOR)
        portrait = None if pbgr is None else cv2.cvtColor(pbgr, cv2.COLOR_BGR2RGB)
    return AvatarPack(image=image, arrays=arrays, meta=meta, portrait=portrait)
