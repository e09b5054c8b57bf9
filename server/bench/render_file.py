"""``headcast bench render-file``: real-time factor of offline rendering at 256 and 512.

Real-time factor = wall time of ``render_file`` (decode, motion, render, encode, mux)
divided by the audio's duration; 0.1 means ten times faster than real time. The
machine's load average is printed with it, because on a shared machine it matters.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from headcast.models.audio import SAMPLE_RATE, write_wav
from headcast.server.errors import UserError

HELP = "real-time factor of offline rendering (headcast render) at 256 and 512"
TEXT = (
    "Offline rendering turns a narration into a video of the avatar speaking it. "
    "This sentence is long enough to measure the steady rate of rendering and encoding."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--speech", type=Path, help="audio file (default: synthesised speech)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the test audio")
    parser.add_argument(
        "--sizes", nargs="+", default=["256", "512"], choices=["256", "512", "full"]
    )
    parser.add_argument("--fps", type=int, default=25, choices=[25, 30])
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[0], help="0 = the default (one per two cores)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per setting (best is shown)")
    parser.add_argument("--avatar", default=None, help="avatar pack folder (default: built-in)")
    parser.add_argument("--model", type=Path, help="motion .onnx (default: the shipped model)")
    parser.add_argument("--preset", default="veryfast", help="x264 preset")


def _speech(folder: Path, seconds: float) -> Path:
    """A WAV of about ``seconds``: espeak-ng speech repeated, or voiced bursts without it."""
    from headcast.models.audio.decode import load_audio

    out = folder / "speech.wav"
    pcm: np.ndarray
    if shutil.which("espeak-ng"):
        raw = folder / "tts.wav"
        subprocess.run(["espeak-ng", "-w", str(raw), TEXT], check=True, capture_output=True)
        one, _ = load_audio(raw)
        pcm = np.tile(
            np.concatenate([one, np.zeros(SAMPLE_RATE // 2, np.float32)]),
            1 + int(seconds * SAMPLE_RATE) // len(one),
        )
    else:
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        pcm = (0.2 * np.sin(2 * np.pi * 140 * t) * (np.sin(2 * np.pi * 0.7 * t) > 0)).astype(
            np.float32
        )
    return write_wav(out, pcm[: int(seconds * SAMPLE_RATE)])


def run(args: argparse.Namespace) -> int:
    from headcast.models.offline import (
        FULL,
        RenderContext,
        RenderError,
        RenderOptions,
        Size,
        default_workers,
        render_file,
    )

    ctx = RenderContext(avatar=args.avatar, motion_model=args.model, provider="cpu")
    load = os.getloadavg()
    print(
        f"cores: {os.cpu_count()}, load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    with tempfile.TemporaryDirectory(prefix="headcast-bench-") as tmp:
        folder = Path(tmp)
        speech = args.speech or _speech(folder, args.seconds)
        print(
            f"{'size':>6} {'workers':>7} {'frames':>6} {'audio s':>8} {'wall s':>7} "
            f"{'RTF':>6} {'frames/s':>8}  load"
        )
        for size_arg in args.sizes:
            size: Size = FULL if size_arg == FULL else int(size_arg)
            for workers in args.workers:
                opts = RenderOptions(
                    fps=args.fps, size=size, seed=0, workers=workers, preset=args.preset
                )
                try:
                    render_file(speech, folder / "warm.mp4", opts, context=ctx)  # loads models
                    best = None
                    for _ in range(max(1, args.repeat)):
                        r = render_file(speech, folder / "out.mp4", opts, context=ctx)
                        best = r if best is None or r.wall_s < best.wall_s else best
                except RenderError as exc:
                    raise UserError(str(exc)) from exc
                assert best is not None
                print(
                    f"{size_arg:>6} {workers or default_workers():>7} {best.frames:>6} "
                    f"{best.audio_s:>8.2f} {best.wall_s:>7.2f} {best.rtf:>6.3f} "
                    f"{best.frames / best.wall_s:>8.1f}  {os.getloadavg()[0]:.2f}"
                )
                time.sleep(0.1)
    return 0
