"""``headcast bench enroll``: seconds to enroll a portrait, per stage-free total."""

from __future__ import annotations

import argparse
import statistics
import time

from headcast.models.sizes import PACK_SIZES

HELP = "time avatar enrollment of a 1-megapixel portrait (target < 3 s on 2 cores)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--portrait", default=None, help="image file (default: the astronaut at 1000x1000)"
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, choices=PACK_SIZES, default=max(PACK_SIZES))


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from headcast.models.avatar.enroll import build_pack
    from headcast.models.avatar.image_io import load_portrait

    if args.portrait:
        image = load_portrait(args.portrait)
    else:
        from skimage import data

        image = cv2.resize(
            np.asarray(data.astronaut()), (1000, 1000), interpolation=cv2.INTER_CUBIC
        )
    build_pack(image, size=args.size)  # warm-up: the face-mesh graph's first start
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        build_pack(image, size=args.size)
        times.append(time.perf_counter() - start)
    h, w = image.shape[:2]
    print(f"portrait {w}x{h} ({w * h / 1e6:.2f} MP) -> {args.size}x{args.size} pack")
    print(
        f"enroll seconds: median {statistics.median(times):.3f}  min {min(times):.3f}  max {max(times):.3f}  (runs {args.runs})"
    )
    return 0
