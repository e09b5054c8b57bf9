"""Export the EDTalk checkpoints to ONNX (torch only): ``python -m headcast.models.edtalk.nets.export DIR``.

Three graphs per generator variant, split where the work naturally splits:

* ``<variant>_source.onnx`` (fp32, once per avatar): image float32 (1, 3, 256, 256) in
  [-1, 1] -> ``latent`` (1, 512), ``feat0..5`` (1, C_l, 8*2^l, 8*2^l), ``normed0..5``
  (the EEM cache, full model only) and ``alpha`` (1, N), the bank weights the image
  itself carries (its own mouth, pose and expression).
* ``<variant>_frame_{fp32,fp16}.onnx`` (per frame): the cached source tensors (batch 1)
  and ``alpha`` float32 (B, N) -> ``image`` float32 (B, 3, 256, 256), ~[-1, 1]. The QR
  factor of the bases is computed here once and stored as a constant (arXiv 2404.01647
  recomputes it every call; it only depends on the weights). The fp16 graph keeps
  float32 inputs/outputs and GridSample.
* ``audio2lip.onnx``: mel float32 (N, 1, 80, 16) -> ``mouth`` float32 (N, 20).

Each file carries its layout in metadata (``headcast.*`` keys), so the runtime needs
nothing else.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path

import onnx
import torch
from torch import nn

from headcast.models.edtalk.files import (
    AUDIO2LIP_FILE,
    VARIANT_FILES,
    Precision,
    Variant,
    WeightsError,
    audio2lip_onnx,
    frame_onnx,
    source_onnx,
)
from headcast.models.edtalk.mel import FPS, LOOKAHEAD_MS, SAMPLE_RATE
from headcast.models.edtalk.nets.audio2lip import MEL_BINS, MEL_WINDOW, Audio2Lip
from headcast.models.edtalk.nets.checkpoint import load_audio2lip, load_generator
from headcast.models.edtalk.nets.generator import MOUTH_DIM, POSE_DIM, Generator

log = logging.getLogger(__name__)

OPSET = 17  # GridSample needs >= 16
# Ops left in float32 in the fp16 graph: sampling positions need the precision
# (a 1e-3 error in [-1, 1] coordinates is a sizeable fraction of a pixel at 256^2).
FP16_KEEP_FP32 = ("GridSample",)


class SourceGraph(nn.Module):
    """image (B, 3, S, S) -> latent, feats..., normed..., alpha. Run once per avatar."""

    def __init__(self, gen: Generator) -> None:
        super().__init__()
        self.gen = gen

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        latent, feats = self.gen.encode(image)
        normed = self.gen.dec.prepare(feats)
        return (latent, *feats, *normed, self.gen.coeffs_of(latent))


class FrameGraph(nn.Module):
    """(latent, feats..., normed..., alpha (B, N)) -> image (B, 3, S, S) with Q as a constant."""

    q: torch.Tensor

    def __init__(self, gen: Generator) -> None:
        super().__init__()
        self.gen = gen
        self.num_levels = len(gen.dec.to_flows)
        with torch.no_grad():
            self.register_buffer("q", gen.basis().detach().clone())

    def forward(self, latent: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
        n = self.num_levels
        feats = list(tensors[:n])
        normed = list(tensors[n : 2 * n]) if self.gen.with_expression else []
        alpha = tensors[-1]
        move, exp_latent = self.gen.motion(alpha, self.q)
        return self.gen.dec.render(
            latent + move, feats, normed, exp_latent if self.gen.with_expression else None
        )


def source_names(gen: Generator) -> list[str]:
    """Output names of the source graph = the cached-tensor input names of the frame graph."""
    n = len(gen.dec.to_flows)
    names = ["latent"] + [f"feat{i}" for i in range(n)]
    if gen.with_expression:
        names += [f"normed{i}" for i in range(n)]
    return names


def _export(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: Mapping[str, Mapping[int, str]],
    metadata: Mapping[str, str],
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer notes that shapes become constants (intended: only the batch is
        # dynamic) and which constant folds it skipped; the parity tests check the result.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
        torch.onnx.export(
            module.eval(),
            args,
            str(path),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dict(dynamic_axes),
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    model = onnx.load(str(path))
    _set_metadata(model, metadata)
    onnx.save(model, str(path))


def _set_metadata(model: onnx.ModelProto, metadata: Mapping[str, str]) -> None:
    existing = {p.key: p for p in model.metadata_props}
    for key, value in metadata.items():
        if key in existing:
            existing[key].value = str(value)
        else:
            model.metadata_props.add(key=key, value=str(value))


def generator_metadata(gen: Generator, variant: str, weights_digest: str) -> dict[str, str]:
    n = gen.num_coeffs
    return {
        "headcast.model": "edtalk",
        "headcast.variant": variant,
        "headcast.paper": "arXiv:2404.01647",
        "headcast.image_size": str(gen.dec.size),
        "headcast.num_coeffs": str(n),
        "headcast.mouth": f"0:{MOUTH_DIM}",
        "headcast.pose": f"{MOUTH_DIM}:{MOUTH_DIM + POSE_DIM}",
        "headcast.expression": f"{MOUTH_DIM + POSE_DIM}:{n}" if gen.with_expression else "",
        "headcast.cached_inputs": ",".join(source_names(gen)),
        "headcast.image_range": "-1,1",
        "headcast.weights_sha256": weights_digest,
    }


def export_generator(
    gen: Generator,
    out_dir: Path,
    variant: Variant = "edtalk",
    precisions: tuple[Precision, ...] = ("fp32", "fp16"),
    weights_digest: str = "",
) -> list[Path]:
    """Write the source graph and one frame graph per precision; returns the paths."""
    gen = gen.eval()
    size = gen.dec.size
    meta = generator_metadata(gen, variant, weights_digest)
    image = torch.rand(1, 3, size, size) * 2 - 1
    names = source_names(gen)
    src_path = source_onnx(out_dir, variant)
    _export(
        SourceGraph(gen),
        (image,),
        src_path,
        ["image"],
        [*names, "alpha"],
        {"image": {0: "batch"}, **{k: {0: "batch"} for k in [*names, "alpha"]}},
        {**meta, "headcast.graph": "source", "headcast.precision": "fp32"},
    )
    with torch.no_grad():
        cached = SourceGraph(gen)(image)
    alpha = torch.randn(2, gen.num_coeffs) * 0.5
    fp32_path = frame_onnx(out_dir, variant, "fp32")
    _export(
        FrameGraph(gen),
        (*cached[:-1], alpha),
        fp32_path,
        [*names, "alpha"],
        ["image"],
        {"alpha": {0: "batch"}, "image": {0: "batch"}},
        {**meta, "headcast.graph": "frame", "headcast.precision": "fp32"},
    )
    paths = [src_path, fp32_path]
    if "fp16" in precisions:
        paths.append(convert_fp16(fp32_path, frame_onnx(out_dir, variant, "fp16")))
    if "fp32" not in precisions:
        fp32_path.unlink()
        paths.remove(fp32_path)
    return paths


def convert_fp16(src: Path, dst: Path) -> Path:
    """float32 graph -> float16 weights and arithmetic, float32 inputs/outputs kept."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(str(src))
    half = convert_float_to_float16(
        model,
        keep_io_types=True,
        op_block_list=[*DEFAULT_OP_BLOCK_LIST, *FP16_KEEP_FP32],
    )
    _set_metadata(half, {"headcast.precision": "fp16"})
    onnx.save(half, str(dst))
    return dst


def export_audio2lip(model: Audio2Lip, out_dir: Path, weights_digest: str = "") -> Path:
    path = audio2lip_onnx(out_dir)
    _export(
        model.eval(),
        (torch.randn(3, 1, MEL_BINS, MEL_WINDOW),),
        path,
        ["mel"],
        ["mouth"],
        {"mel": {0: "frames"}, "mouth": {0: "frames"}},
        {
            "headcast.model": "edtalk_audio2lip",
            "headcast.paper": "arXiv:2404.01647",
            "headcast.fps": str(FPS),
            "headcast.sample_rate": str(SAMPLE_RATE),
            "headcast.mel_bins": str(MEL_BINS),
            "headcast.mel_window": str(MEL_WINDOW),
            "headcast.lookahead_ms": str(LOOKAHEAD_MS),
            "headcast.mouth_dim": str(MOUTH_DIM),
            "headcast.weights_sha256": weights_digest,
        },
    )
    return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_weights_dir(
    weights_dir: str | Path,
    variants: tuple[Variant, ...] = ("edtalk",),
    precisions: tuple[Precision, ...] = ("fp32", "fp16"),
    allow_pickle: bool = False,
) -> list[Path]:
    """Export everything the runtime needs from the upstream files in ``weights_dir``."""
    root = Path(weights_dir).expanduser()
    if not root.is_dir():
        raise WeightsError(
            f"{root}: no such folder (it should hold {', '.join(VARIANT_FILES.values())})"
        )
    written = []
    for variant in variants:
        pt = root / VARIANT_FILES[variant]
        gen = load_generator(pt, allow_pickle=allow_pickle)
        expected = variant == "edtalk"
        if gen.with_expression != expected:
            log.warning("%s holds the %s model", pt, "full" if gen.with_expression else "lip+pose")
        written += export_generator(gen, root, variant, precisions, sha256(pt))
    a2l = root / AUDIO2LIP_FILE
    written.append(
        export_audio2lip(load_audio2lip(a2l, allow_pickle=allow_pickle), root, sha256(a2l))
    )
    return written


def export_random_weights(folder: Path, variant: str = "edtalk", size: int = 256) -> Path:
    """Export randomly initialised upstream-size graphs into ``folder`` (for benchmarks).

    The flow convolutions are scaled down so the warps stay smooth, as trained
    weights have; placeholder checkpoint files satisfy ``check_weights``.
    """
    torch.manual_seed(0)
    gen = Generator(size, with_expression=variant == "edtalk").eval()
    with torch.no_grad():
        for name, p in gen.named_parameters():
            if name.startswith("dec.to_flows") and name.endswith("conv.weight"):
                p.mul_(0.1)
    for name in ("EDTalk.pt", "EDTalk_lip_pose.pt", "Audio2Lip.pt"):
        (folder / name).write_bytes(b"placeholder: random weights exported directly")
    export_generator(gen, folder, variant)  # type: ignore[arg-type]
    export_audio2lip(Audio2Lip().eval(), folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights_dir", type=Path, help="folder holding EDTalk.pt and Audio2Lip.pt")
    parser.add_argument(
        "--variant", action="append", choices=sorted(VARIANT_FILES), help="default: edtalk"
    )
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="allow checkpoints that need the full (code-running) unpickler; trusted files only",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        paths = export_weights_dir(
            args.weights_dir, tuple(args.variant or ["edtalk"]), allow_pickle=args.allow_pickle
        )
    except WeightsError as exc:  # a missing, truncated, foreign or pickled file: say which
        print(f"edtalk export: error: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
