"""``headcast enroll PORTRAIT -o AVATAR_DIR``: build an avatar pack from a portrait."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from headcast.models.sizes import PACK_SIZES
from headcast.server.errors import UserError

HELP = "enroll a portrait as an avatar (face landmarks, flow bases, textures)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("portrait", type=Path, help="JPEG/PNG/WebP portrait with one visible face")
    parser.add_argument("-o", "--out", type=Path, required=True, help="avatar pack folder to write")
    parser.add_argument(
        "--size", type=int, choices=PACK_SIZES, default=512, help="head-frame side in pixels"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="re-enroll even if the pack is cached, or replace another portrait's pack",
    )


def run(args: argparse.Namespace) -> int:
    from headcast.models.avatar.enroll import enroll
    from headcast.models.avatar.errors import EnrollError
    from headcast.models.avatar.pack import read_meta

    start = time.perf_counter()
    # a stage line redrawn in place on a terminal; nothing in a log or a pipe
    tty = sys.stderr.isatty()

    def progress(frac: float, stage: str) -> None:
        if tty:
            print(f"\r[{frac * 100:5.1f}%] {stage:<40}", end="", file=sys.stderr, flush=True)

    try:
        out = enroll(args.portrait, args.out, size=args.size, progress=progress, force=args.force)
    except EnrollError as exc:
        if tty:
            print(file=sys.stderr)
        raise UserError(str(exc)) from exc
    if tty:
        print(file=sys.stderr)
    print(f"avatar pack: {out} ({time.perf_counter() - start:.2f} s)")
    print(channel_report(read_meta(out)))
    return 0


def channel_report(meta: dict[str, Any]) -> str:
    """One line on the channels enrollment had to weaken or switch off for this face."""
    scales = meta.get("channel_scales") or {}
    off = [name for name, scale in scales.items() if scale == 0.0]
    weak = [f"{name} x{scale:g}" for name, scale in scales.items() if 0.0 < scale < 1.0]
    if not off and not weak:
        return "every channel at full strength"
    parts = []
    if off:
        parts.append("switched off (would fold this face): " + ", ".join(off))
    if weak:
        parts.append("weakened: " + ", ".join(weak))
    return "; ".join(parts)
