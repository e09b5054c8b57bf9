"""``headcast motion SPEECH -o motion.json``: ARKit mouth coefficients from speech.

Streams the file through the same :class:`~models.motion.stream.MotionStreamer` the live
server uses, in bounded memory (a model for files then through its closure pass,
:mod:`models.motion.closures`, as a render does), and writes
``{"fps": 25, "names": [...], "frames": [[...], ...]}`` (frame ``i`` is at ``i / fps`` s,
values 0..1) or CSV with a time column.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from headcast.models.audio import SUPPORTED_FPS
from headcast.models.paths import folder_problem
from headcast.server.errors import UserError

HELP = "audio file -> ARKit mouth coefficients per video frame (JSON or CSV)"
DECIMALS = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "speech", type=Path, help="audio or video file (WAV, FLAC, MP3, OGG, M4A, ...)"
    )
    parser.add_argument(
        "-o", "--out", default="-", help="output file (default: standard output, also '-')"
    )
    parser.add_argument(
        "--format", choices=["json", "csv"], help="default: from the extension, else json"
    )
    parser.add_argument(
        "--fps", type=int, default=25,
        help=f"frames per second: {', '.join(map(str, SUPPORTED_FPS))} (default 25)",
    )  # fmt: skip
    parser.add_argument("--model", type=Path, help="motion .onnx (default: the shipped model)")
    parser.add_argument("--provider", choices=["auto", "cpu", "cuda"], default="auto")


def _rows(args: argparse.Namespace) -> tuple[tuple[str, ...], Iterator[list[float]]]:
    import numpy as np

    from headcast.models.audio import AudioError
    from headcast.models.audio.decode import probe_audio
    from headcast.models.audio.features import iter_audio
    from headcast.models.motion import (
        ClosurePass,
        MotionFrames,
        MotionModelError,
        MotionStreamer,
        load_motion_model,
    )
    from headcast.server.commands.render import ProgressBar

    try:
        model = load_motion_model(args.model, fps=args.fps, provider=args.provider, offline=True)
    except MotionModelError as exc:
        raise UserError(str(exc)) from exc
    chunks = iter_audio(args.speech)
    try:
        first = next(chunks, None)  # surfaces unreadable files before any output is written
        # the length the header states, for a bar on a terminal (nothing when piped)
        declared = probe_audio(args.speech) if sys.stderr.isatty() else None
    except AudioError as exc:
        raise UserError(str(exc)) from exc
    if first is None:
        raise UserError(f"{args.speech}: the audio is empty (zero samples)")
    bar = ProgressBar(model.fps) if declared else None
    expected = math.ceil((declared or 0.0) * model.fps)

    def gen() -> Iterator[list[float]]:
        streamer = MotionStreamer(model)
        # A model for files also gets the closure pass, as a render does.
        closer = None if model.causal else ClosurePass(model.fps)

        def step(pcm: np.ndarray, frames: MotionFrames) -> MotionFrames:
            return frames if closer is None else closer.push(pcm, frames)

        done = 0
        try:
            for chunk in itertools.chain([first], chunks):
                frames = step(chunk, streamer.push(chunk))
                yield from _frames(frames)
                done += len(frames)
                if bar is not None:
                    bar(done, max(expected, done + 1))
        except AudioError as exc:
            raise UserError(str(exc)) from exc
        last = streamer.flush()
        last = last if closer is None else closer.flush(last)
        yield from _frames(last)
        if bar is not None:
            bar(done + len(last), done + len(last))

    return model.names, gen()


def _frames(frames: object) -> Iterator[list[float]]:
    for row in frames.coeffs:  # type: ignore[attr-defined]
        yield [round(float(v), DECIMALS) for v in row]


def _write_json(out: TextIO, fps: int, names: tuple[str, ...], rows: Iterator[list[float]]) -> int:
    out.write(f'{{"fps": {fps}, "names": {json.dumps(list(names))}, "frames": [')
    n = 0
    for row in rows:
        out.write(("," if n else "") + "\n" + json.dumps(row))
        n += 1
    out.write("\n]}\n")
    return n


def _write_csv(out: TextIO, fps: int, names: tuple[str, ...], rows: Iterator[list[float]]) -> int:
    out.write(",".join(["time", *names]) + "\n")
    n = 0
    for n, row in enumerate(rows, 1):
        out.write(f"{(n - 1) / fps:.4f}," + ",".join(f"{v:g}" for v in row) + "\n")
    return n


def run(args: argparse.Namespace) -> int:
    fmt = args.format or ("csv" if str(args.out).lower().endswith(".csv") else "json")
    names, rows = _rows(args)
    writer = _write_csv if fmt == "csv" else _write_json
    if args.out == "-":
        try:
            writer(sys.stdout, args.fps, names, rows)
            sys.stdout.flush()
        except BrokenPipeError:  # the reader went away (`| head`): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        return 0
    target = Path(args.out)
    if target.is_dir():
        raise UserError(f"{target}: is a folder; give a file name such as motion.json")
    if target.exists() and not target.is_file():  # a device or pipe: write into it as it is
        try:
            with open(target, "w", encoding="utf-8") as fh:
                writer(fh, args.fps, names, rows)
        except OSError as exc:
            raise UserError(f"cannot write {target}: {exc.strerror}") from exc
        return 0
    problem = folder_problem(target)
    if problem is not None:
        raise UserError(f"cannot write {target}: {problem}")
    tmp = target.with_name(target.name + ".part")
    try:
        with open(tmp, "w", encoding="utf-8", buffering=io.DEFAULT_BUFFER_SIZE * 16) as fh:
            n = writer(fh, args.fps, names, rows)
        tmp.replace(target)
    except OSError as exc:
        raise UserError(f"cannot write {target}: {exc.strerror}") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    print(f"{target}: {n} frame{'' if n == 1 else 's'} at {args.fps} fps", file=sys.stderr)
    return 0
