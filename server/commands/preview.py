"""``headcast preview --avatar DIR -o OUT_DIR``: contact sheet PNG and a sweep MP4."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from server.cli_args import writable_file
from server.errors import UserError

HELP = "write a contact sheet (every channel at 0, 0.5, 1) and a bank-sweep MP4 of an avatar"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--avatar", type=Path, default=None, help="avatar pack folder (default: built-in)"
    )
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    parser.add_argument("--size", type=int, choices=(256, 512), default=None)
    parser.add_argument("--no-video", action="store_true", help="only the contact sheet")


def run(args: argparse.Namespace) -> int:
    import av
    import cv2

    from models.avatar.errors import AvatarError
    from models.avatar.pack import load_pack
    from models.render.preview import contact_sheet, write_sweep
    from models.render.warp import WarpRenderer
    from server.commands.enroll import channel_report

    try:
        pack = load_pack(args.avatar)
    except AvatarError as exc:
        raise UserError(str(exc)) from exc
    if args.size and args.size != pack.size:
        from models.avatar.resize import resize_pack

        pack = resize_pack(pack, args.size)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {args.out}: {exc.strerror}") from exc
    writable_file(args.out / "contact_sheet.png", "-o")
    renderer = WarpRenderer(pack)
    sheet = contact_sheet(renderer, pack.arrays["landmarks"], pack.meta.get("channel_scales"))
    sheet_path = args.out / "contact_sheet.png"
    if not cv2.imwrite(str(sheet_path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise UserError(f"could not write {sheet_path}")
    print(f"contact sheet: {sheet_path}")
    print(channel_report(pack.meta))
    if not args.no_video:
        video = args.out / "sweep.mp4"
        if video.exists() and not video.is_file():
            raise UserError(f"{video}: exists and is not a file")

        def progress(i: int, n: int) -> None:
            if i % 25 == 0 or i == n:
                print(f"\rsweep video: {i}/{n} frames", end="", file=sys.stderr, flush=True)

        try:
            write_sweep(renderer, video, progress)
        except (OSError, av.error.FFmpegError) as exc:
            raise UserError(f"could not write {video} ({exc})") from exc
        print(file=sys.stderr)
        print(f"sweep video: {video}")
    return 0
