"""``headcast bench render``: renderer frames/s next to a bare cv2.remap of the same size."""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from headcast.models.sizes import PACK_SIZES
from headcast.server.cli_args import positive_int, positive_seconds
from headcast.server.errors import UserError

HELP = "frames/s of the warp renderer (CPU fast path, ONNX graph) vs a bare cv2.remap"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--avatar", default=None, help="avatar pack folder (default: built-in)")
    parser.add_argument(
        "--sizes", type=int, nargs="+", choices=PACK_SIZES, help="frame sizes (default: 256 512)"
    )
    parser.add_argument(
        "--seconds", type=positive_seconds, default=2.0, help="time budget per measurement"
    )
    parser.add_argument(
        "--onnx-batches", type=positive_int, nargs="+", help="ONNX batch sizes (default: 1 4)"
    )
    parser.add_argument(
        "--backend",
        default="warp",
        choices=["warp", "edtalk"],
        help="warp (default) or edtalk (the same as `headcast bench edtalk`)",
    )
    parser.add_argument("--edtalk-weights", type=Path, help="with --backend edtalk")
    parser.add_argument(
        "--random", action="store_true", help="with --backend edtalk: random-weight graphs"
    )


def _rate(fn: Callable[[int], object], seconds: float, per_call: int = 1) -> float:
    """Frames per second of ``fn(i)``, after one warm-up call, over about ``seconds``."""
    fn(0)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < 3:
        fn(n)
        n += 1
    return n * per_call / (time.perf_counter() - start)


def _talking(n: int, rng: np.random.Generator) -> np.ndarray:
    """A plausible stream of coefficients: speech, blinks, small head motion."""
    from headcast.models.channels import CHANNEL_INDEX, NUM_CHANNELS

    c = np.zeros((n, NUM_CHANNELS), np.float32)
    t = np.arange(n) / 25.0
    c[:, CHANNEL_INDEX["jawOpen"]] = 0.35 + 0.3 * np.sin(2 * np.pi * 3.1 * t)
    c[:, CHANNEL_INDEX["mouthFunnel"]] = 0.2 + 0.2 * np.sin(2 * np.pi * 1.3 * t)
    c[:, CHANNEL_INDEX["mouthSmileLeft"]] = c[:, CHANNEL_INDEX["mouthSmileRight"]] = 0.3
    c[:, CHANNEL_INDEX["eyeBlinkLeft"]] = c[:, CHANNEL_INDEX["eyeBlinkRight"]] = (
        rng.random(n) < 0.05
    ) * 1.0
    c[:, CHANNEL_INDEX["headYaw"]] = 6 * np.sin(2 * np.pi * 0.3 * t)
    c[:, CHANNEL_INDEX["headPitch"]] = 3 * np.sin(2 * np.pi * 0.2 * t)
    return c


def run(args: argparse.Namespace) -> int:
    import cv2

    from headcast.models.avatar.pack import load_pack
    from headcast.models.avatar.resize import resize_pack
    from headcast.models.onnx_session import cuda_available
    from headcast.models.render.warp import WarpRenderer
    from headcast.models.render.warp_onnx import OnnxWarpRenderer

    if args.backend == "edtalk":
        return _edtalk(args)
    edtalk_only = [
        f for f, v in (("--random", args.random), ("--edtalk-weights", args.edtalk_weights)) if v
    ]
    if edtalk_only:
        raise UserError(f"{', '.join(edtalk_only)}: only with --backend edtalk")
    sizes = args.sizes or list(PACK_SIZES)
    batches = args.onnx_batches or [1, 4]
    base = load_pack(args.avatar)
    rng = np.random.default_rng(0)
    coeffs = _talking(250, rng)
    print(f"cv2 threads: {cv2.getNumThreads()}  (timings: frames/s, higher is better)")
    print(f"{'size':>5} {'path':<28} {'frames/s':>10} {'ms/frame':>9} {'vs remap':>12}")
    for size in sizes:
        pack = base if size == base.size else resize_pack(base, size)
        img = pack.image
        ident = np.stack(
            np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32)), -1
        )
        shifted = ident + np.float32(0.37)

        def bare(_: int, img: np.ndarray = img, m: np.ndarray = shifted) -> object:
            return cv2.remap(img, m, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

        remap_fps = _rate(bare, args.seconds)
        rows = [("bare cv2.remap", remap_fps)]
        fast = WarpRenderer(pack)

        def one(i: int, f: WarpRenderer = fast) -> object:
            return f.render(coeffs[i % len(coeffs)])

        rows.append(("cpu fast path (batch 1)", _rate(one, args.seconds)))
        providers = ["cpu"] + (["cuda"] if cuda_available() else [])
        for prov in providers:
            graph = OnnxWarpRenderer(pack, provider=prov)  # type: ignore[arg-type]
            for b in batches:

                def step(i: int, g: OnnxWarpRenderer = graph, b: int = b) -> object:
                    return g.render_batch(coeffs[(np.arange(b) + i * b) % len(coeffs)])

                rows.append((f"onnx {prov} (batch {b})", _rate(step, args.seconds, per_call=b)))
            del graph, step
            gc.collect()  # release the session (and its threads) before the next measurement
        for name, fps in rows:
            ratio = remap_fps / fps
            print(f"{size:>5} {name:<28} {fps:>10.1f} {1000 / fps:>9.2f} {ratio:>8.2f}x remap")
    return 0


def _edtalk(args: argparse.Namespace) -> int:
    """``--backend edtalk``: EDTalk's own benchmark (frames/s per provider, precision and
    batch), with its defaults and this command's weights and time budget."""
    from headcast.server.bench import edtalk

    warp_only = [
        flag
        for flag, value in (
            ("--avatar", args.avatar),
            ("--sizes", args.sizes),
            ("--onnx-batches", args.onnx_batches),
        )
        if value is not None
    ]
    if warp_only:
        raise UserError(
            f"{', '.join(warp_only)}: not with --backend edtalk (EDTalk renders 256x256; "
            "`headcast bench edtalk` takes its own options)"
        )

    parser = argparse.ArgumentParser()
    edtalk.add_arguments(parser)
    options = parser.parse_args([])
    options.edtalk_weights, options.random = args.edtalk_weights, args.random
    options.seconds = args.seconds
    return edtalk.run(options)
