"""``headcast bench edtalk``: frames/s of the EDTalk renderer per provider, precision, batch."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from headcast.server.cli_args import positive_int, positive_seconds

HELP = "frames/s of the EDTalk neural renderer (ONNX Runtime; CPU, and CUDA when present)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--edtalk-weights", type=Path, help="weights folder (see docs/edtalk.md)")
    parser.add_argument(
        "--random",
        action="store_true",
        help="no download: export randomly initialised upstream-size models first (needs torch); "
        "same graphs, same cost, meaningless pictures",
    )
    parser.add_argument("--portrait", type=Path, help="face crop image (default: synthetic)")
    parser.add_argument(
        "--precisions", nargs="+", default=["fp32", "fp16"], choices=["fp32", "fp16"]
    )
    parser.add_argument("--batches", type=positive_int, nargs="+", default=[1, 4])
    parser.add_argument(
        "--seconds", type=positive_seconds, default=3.0, help="time budget per measurement"
    )
    parser.add_argument(
        "--providers",
        nargs="+",
        default=None,
        choices=["cpu", "cuda"],
        help="default: cpu, and cuda if usable",
    )
    parser.add_argument("--variant", default="edtalk", choices=["edtalk", "edtalk_lip_pose"])


def _rate(fn, batch: int, seconds: float) -> tuple[float, float]:
    """(frames/s, ms per call) after one warm-up call, over about ``seconds`` (>= 3 calls)."""
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < 3:
        fn()
        n += 1
    elapsed = time.perf_counter() - start
    return n * batch / elapsed, 1000 * elapsed / n


def _portrait(path: Path | None) -> np.ndarray:
    if path is None:
        yy, xx = np.mgrid[0:256, 0:256]
        return np.stack([xx, yy, (xx + yy) // 2], axis=-1).astype(np.uint8)
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        from headcast.server.errors import UserError

        raise UserError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def run(args: argparse.Namespace) -> int:
    from headcast.models.edtalk import WeightsError, check_weights, create_edtalk_renderer
    from headcast.models.onnx_session import cuda_available
    from headcast.server.errors import UserError

    with tempfile.TemporaryDirectory(prefix="edtalk-bench-") as tmp:
        if args.random:
            print("exporting random upstream-size EDTalk graphs (one-off, ~1 min)...", flush=True)
            from headcast.models.edtalk.nets.export import export_random_weights  # needs torch

            weights = export_random_weights(Path(tmp), args.variant)
        elif args.edtalk_weights is None:
            raise UserError("give --edtalk-weights DIR (see docs/edtalk.md) or --random")
        else:
            weights = args.edtalk_weights
        providers = args.providers or (["cpu", "cuda"] if cuda_available() else ["cpu"])
        portrait = _portrait(args.portrait)
        print(f"{'provider':<8} {'precision':<9} {'batch':>5} {'frames/s':>9} {'ms/call':>9}")
        for provider in providers:
            for precision in args.precisions:
                try:
                    check_weights(weights, args.variant, precision)
                    start = time.perf_counter()
                    r = create_edtalk_renderer(
                        weights, portrait, 256, provider, precision, args.variant
                    )
                    setup_ms = 1000 * (time.perf_counter() - start)
                except WeightsError as exc:
                    raise UserError(str(exc)) from exc
                except Exception as exc:  # a provider/precision this machine cannot run
                    print(f"{provider:<8} {precision:<9}  unavailable: {str(exc).splitlines()[0]}")
                    continue
                for batch in args.batches:
                    alpha = np.repeat(r.source_alpha[None], batch, axis=0)
                    alpha[:, :20] += np.linspace(-1, 1, batch, dtype=np.float32)[:, None]
                    fps, ms = _rate(lambda a=alpha, r=r: r.render_batch(a), batch, args.seconds)
                    print(f"{provider:<8} {precision:<9} {batch:>5} {fps:>9.1f} {ms:>9.1f}")
                print(f"{'':<8} (session setup + source encoding: {setup_ms:.0f} ms)")
    return 0
