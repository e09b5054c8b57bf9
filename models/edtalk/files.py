"""Where the EDTalk files live in a weights folder, and checking they are there.

No torch here: the server calls :func:`check_weights` before it decides anything.

A weights folder holds what the user downloaded from the upstream project and what
``python -m headcast.models.edtalk.nets.export DIR`` writes next to it::

    DIR/EDTalk.pt                 upstream generator with the expression bank (36 coeffs)
    DIR/EDTalk_lip_pose.pt        optional: upstream lip+pose generator (26 coeffs)
    DIR/Audio2Lip.pt              upstream audio -> mouth-weights network
    DIR/predefined_exp_weights/   optional: upstream emotion vectors, *.npy float32 (1, 10)
    DIR/onnx/<variant>_source.onnx, <variant>_frame_fp32.onnx, <variant>_frame_fp16.onnx,
    DIR/onnx/audio2lip.onnx       exported by us
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

EDTALK_FILE = "EDTalk.pt"
LIP_POSE_FILE = "EDTalk_lip_pose.pt"
AUDIO2LIP_FILE = "Audio2Lip.pt"
EXP_WEIGHTS_DIR = "predefined_exp_weights"
ONNX_DIR = "onnx"

Variant = Literal["edtalk", "edtalk_lip_pose"]
Precision = Literal["fp32", "fp16"]
VARIANT_FILES: dict[str, str] = {"edtalk": EDTALK_FILE, "edtalk_lip_pose": LIP_POSE_FILE}
UPSTREAM_URL = "https://github.com/tanshuai0219/EDTalk"


class WeightsError(RuntimeError):
    """EDTalk files missing or unusable; the message lists what and how to fix it."""


def source_onnx(weights_dir: str | Path, variant: Variant = "edtalk") -> Path:
    return Path(weights_dir) / ONNX_DIR / f"{variant}_source.onnx"


def frame_onnx(
    weights_dir: str | Path, variant: Variant = "edtalk", precision: Precision = "fp32"
) -> Path:
    return Path(weights_dir) / ONNX_DIR / f"{variant}_frame_{precision}.onnx"


def audio2lip_onnx(weights_dir: str | Path) -> Path:
    return Path(weights_dir) / ONNX_DIR / "audio2lip.onnx"


def check_weights(
    weights_dir: str | Path,
    variant: Variant = "edtalk",
    precision: Precision = "fp32",
    need_onnx: bool = True,
    inspect_graphs: bool = True,
) -> None:
    """Raise :class:`WeightsError` listing every missing file and what to do about it.

    ``inspect_graphs`` also parses each exported graph and checks it is the one its name
    says (a pre-check for the CLI; loading them into ONNX Runtime catches the same).
    """
    root = Path(weights_dir).expanduser()
    if variant not in VARIANT_FILES:
        raise WeightsError(
            f"unknown EDTalk variant {variant!r}; use one of {sorted(VARIANT_FILES)}"
        )
    if root.exists() and not root.is_dir():
        raise WeightsError(
            f"EDTalk weights: {root} is a file; give the folder holding the checkpoints"
        )
    if not root.is_dir():
        raise WeightsError(
            f"EDTalk weights folder {root} does not exist; download {VARIANT_FILES[variant]} and "
            f"{AUDIO2LIP_FILE} from {UPSTREAM_URL} into it (see docs/edtalk.md)"
        )
    missing_pt = [n for n in (VARIANT_FILES[variant], AUDIO2LIP_FILE) if not (root / n).is_file()]
    if missing_pt:
        raise WeightsError(
            f"missing in {root}: {', '.join(missing_pt)}. These are the upstream EDTalk "
            f"checkpoints; download them from {UPSTREAM_URL} (see docs/edtalk.md)"
        )
    if not need_onnx:
        return
    wanted = [
        source_onnx(root, variant),
        frame_onnx(root, variant, precision),
        audio2lip_onnx(root),
    ]
    missing_onnx = [p for p in wanted if not p.is_file()]
    if missing_onnx:
        names = ", ".join(str(p.relative_to(root)) for p in missing_onnx)
        raise WeightsError(
            f"missing in {root}: {names}. Export them once with "
            f"`python -m headcast.models.edtalk.nets.export {root}` (needs torch)"
        )
    if not inspect_graphs:
        return
    roles = (("headcast.graph", "source"), ("headcast.graph", "frame"),
             ("headcast.model", "edtalk_audio2lip"))  # fmt: skip
    for path, (key, role) in zip(wanted, roles, strict=True):
        _check_export(root, path, key, role)


def _check_export(root: Path, path: Path, key: str, role: str) -> None:
    """WeightsError unless ``path`` parses as ONNX and is the graph its name says."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's own decode errors
        raise WeightsError(
            f"{path} is damaged ({exc.__class__.__name__}); export again with "
            f"`python -m headcast.models.edtalk.nets.export {root}`"
        ) from exc
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get(key) != role:
        raise WeightsError(
            f"{path} is not the {role} graph; export again with "
            f"`python -m headcast.models.edtalk.nets.export {root}`"
        )
