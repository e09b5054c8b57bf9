"""``headcast preview --avatar DIR -o OUT_DIR``: contact sheet PNG and a sweep MP4.

``headcast preview --portraits FOLDER -o OUT_DIR [--speech WAV]``: enroll every portrait
in a folder and write one comparison sheet (each face at rest, jaw 0.5 and 1, closed,
funnel, blink, yaw +-15 degrees), plus a clip of each face saying ``WAV`` (by default
:data:`SENTENCE` in a built-in voice; ``--no-video``: no clips).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from headcast.models.sizes import PACK_SIZES
from headcast.server.cli_args import writable_file
from headcast.server.errors import UserError

HELP = (
    "write a contact sheet (every channel at 0, 0.5, 1) and a bank-sweep MP4 of an avatar, "
    "or one comparison sheet of a folder of portraits"
)
# Lips shut for /b m p/, rounded for /uw ow/, a wide jaw for /aa ae/: every mouth shape.
SENTENCE = "Maybe you could bring me a bowl of warm apple pie before the boat leaves."
PORTRAIT_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".ppm")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--avatar",
        default=None,
        help="avatar pack folder, or the name of one the server enrolled (default: built-in)",
    )
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    parser.add_argument("--size", type=int, choices=PACK_SIZES, default=None)
    parser.add_argument("--no-video", action="store_true", help="only the contact sheet")
    parser.add_argument(
        "--portraits",
        type=Path,
        default=None,
        help="a folder of portraits: enroll each (packs cached under OUT/avatars) and write "
        "one comparison sheet, compare.png",
    )
    parser.add_argument(
        "--speech",
        type=Path,
        default=None,
        help="with --portraits: each face's clip says this audio file (default: a built-in "
        "voice says a sentence; --no-video: no clips)",
    )


def run(args: argparse.Namespace) -> int:
    import av
    import cv2

    from headcast.models.avatar.errors import AvatarError
    from headcast.models.avatar.pack import load_pack
    from headcast.models.render.preview import contact_sheet, write_sweep
    from headcast.models.render.warp import WarpRenderer
    from headcast.server.commands.enroll import channel_report

    if args.portraits is not None:
        return run_folder(args)
    if args.speech is not None:
        raise UserError("--speech needs --portraits")
    from headcast.server.cli_args import resolve_avatar

    # a pack folder, or a name the server knows, as `render --avatar` takes
    avatar = resolve_avatar(None if args.avatar is None else str(args.avatar))
    try:
        pack = load_pack(avatar)
    except AvatarError as exc:
        raise UserError(str(exc)) from exc
    if args.size and args.size != pack.size:
        from headcast.models.avatar.resize import resize_pack

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

        tty = sys.stderr.isatty()

        def progress(i: int, n: int) -> None:  # redrawn in place on a terminal only
            if tty and (i % 25 == 0 or i == n):
                print(f"\rsweep video: {i}/{n} frames", end="", file=sys.stderr, flush=True)

        try:
            write_sweep(renderer, video, progress)
        except (OSError, av.error.FFmpegError) as exc:
            raise UserError(f"could not write {video} ({exc})") from exc
        if tty:
            print(file=sys.stderr)
        print(f"sweep video: {video}")
    return 0


def run_folder(args: argparse.Namespace) -> int:
    """Enroll each portrait of ``args.portraits``; one comparison sheet, optional clips."""
    import cv2

    from headcast.models.avatar.enroll import enroll
    from headcast.models.avatar.errors import AvatarError, EnrollError
    from headcast.models.avatar.pack import load_pack
    from headcast.models.render.preview import comparison_row, comparison_sheet
    from headcast.models.render.warp import WarpRenderer
    from headcast.server.commands.enroll import channel_report

    folder: Path = args.portraits
    if not folder.is_dir():
        raise UserError(f"--portraits {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in PORTRAIT_SUFFIXES)
    if not files:
        raise UserError(f"--portraits {folder}: no images ({', '.join(PORTRAIT_SUFFIXES)})")
    if args.speech is not None and args.no_video:
        raise UserError("--speech is for the clips; --no-video writes none: give one of them")
    if args.speech is not None and not args.speech.is_file():
        raise UserError(f"--speech {args.speech}: no such file")
    try:
        (args.out / "avatars").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {args.out}: {exc.strerror}") from exc
    sheet_path = args.out / "compare.png"
    writable_file(sheet_path, "-o")
    size = args.size or 512
    speech = None if args.no_video else args.speech or _sentence(args.out)
    rows = []
    for i, path in enumerate(files, 1):
        print(f"[{i}/{len(files)}] {path.name}", file=sys.stderr, flush=True)
        pack_dir = args.out / "avatars" / path.stem
        try:
            enroll(path, pack_dir, size=size)
            pack = load_pack(pack_dir)
        except (EnrollError, AvatarError) as exc:
            rows.append(comparison_row(path.name, None, f"refused: {exc}"))
            print(f"  refused: {exc}", file=sys.stderr)
            continue
        report = channel_report(pack.meta)
        rows.append(comparison_row(path.name, WarpRenderer(pack), report))
        if speech is not None:
            _clip(speech, pack_dir, args.out / f"{path.stem}.mp4", size)
    if not cv2.imwrite(str(sheet_path), cv2.cvtColor(comparison_sheet(rows), cv2.COLOR_RGB2BGR)):
        raise UserError(f"could not write {sheet_path}")
    print(f"comparison sheet: {sheet_path}")
    return 0


def _sentence(out: Path) -> Path | None:
    """SENTENCE said by the default built-in voice, as OUT/sentence.wav; None (and a line
    saying so) when no text-to-speech engine is installed."""
    from headcast.models.audio import write_wav
    from headcast.models.tts import TTSError, builtin_voices, synthesize

    voices = builtin_voices()
    if not voices:
        print("  no clips: no built-in voice (flite, espeak-ng); give --speech", file=sys.stderr)
        return None
    try:
        return write_wav(out / "sentence.wav", synthesize(SENTENCE, next(iter(voices.values()))))
    except TTSError as exc:
        print(f"  no clips: {exc}; give --speech", file=sys.stderr)
        return None


def _clip(speech: Path, pack_dir: Path, out: Path, size: int) -> None:
    from headcast.models.offline.context import RenderContext
    from headcast.models.offline.options import RenderError, RenderOptions
    from headcast.models.offline.render import render_file

    try:
        render_file(
            speech, out, RenderOptions(size=size, workers=1), context=RenderContext(pack_dir)
        )
    except RenderError as exc:
        raise UserError(f"clip {out.name}: {exc}") from exc
    print(f"  clip: {out}", file=sys.stderr)
