"""``headcast bench motion``: audio-to-motion speed on one CPU core, x real time.

Measures the offline path (10 s blocks) and the live path (20 ms pushes, what a WebRTC
session does), front-end included, on speech-like audio (noise bursts at syllable rate)
or on a recording (``--audio``). On the noise the files' closure pass is made to hear
every second (its recogniser skips what the frames call non-speech, and the noise is not
speech to the speech gate): the worst case; a recording shows the cost with its pauses.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from headcast.models.audio import SAMPLE_RATE
from headcast.server.cli_args import positive_seconds

if TYPE_CHECKING:
    from headcast.models.motion import MotionModel

HELP = "audio-to-motion speed (x real time, one CPU core): offline and 20 ms live chunks"
LIVE_CHUNK_S = 0.020
TARGET_X = 40.0  # the floor for one core


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=positive_seconds, default=60.0, help="audio length")
    parser.add_argument("--model", type=Path, help="motion .onnx (default: the shipped model)")
    parser.add_argument(
        "--offline", action="store_true", help="the shipped model for files instead of the live one"
    )
    parser.add_argument("--fps", type=int, default=25, choices=[25, 30])
    parser.add_argument(
        "--audio", type=Path, help="a recording to measure on (default: speech-like noise)"
    )
    parser.add_argument(
        "--no-speech-gate", action="store_true",
        help="the network alone, without the voice-activity gate (models/motion/vad.py)",
    )  # fmt: skip


def speech_like(seconds: float, sample_rate: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """float32 (N,): noise shaped by a 4 Hz syllable envelope with pauses."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    env = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) * (np.sin(2 * np.pi * 0.2 * t) > -0.5)
    return (0.1 * env * rng.standard_normal(n)).astype(np.float32)


def run(args: argparse.Namespace) -> int:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, honestly
    from headcast.models.motion import MotionStreamer, infer, load_motion_model

    model = load_motion_model(
        args.model,
        fps=args.fps,
        provider="cpu",
        offline=args.offline,
        speech_gate=not args.no_speech_gate,
    )
    if args.audio is not None:
        from headcast.models.audio.decode import load_audio
        from headcast.models.audio.features import to_mono_16k

        pcm, rate = load_audio(args.audio)
        audio = to_mono_16k(pcm, rate)
    else:
        audio = speech_like(args.seconds, model.sample_rate)
    seconds = len(audio) / model.sample_rate
    infer(model, audio[: model.sample_rate])  # warm-up
    t0 = time.perf_counter()
    frames = infer(model, audio)
    offline = time.perf_counter() - t0
    streamer = MotionStreamer(model)
    chunk = int(LIVE_CHUNK_S * model.sample_rate)
    t0 = time.perf_counter()
    for i in range(0, len(audio), chunk):
        streamer.push(audio[i : i + chunk])
    streamer.flush()
    live = time.perf_counter() - t0
    params = model.metadata.get("parameters", "?")
    print(
        f"motion model: {params} parameters, look-ahead {1000 * model.lookahead_s:.1f} ms, {model.fps} fps, "
        f"causal {model.metadata.get('causal', '?')}"
    )
    print(f"audio: {seconds:.0f} s -> {len(frames)} frames, one CPU core")
    print(
        f"offline (10 s blocks):  {seconds / offline:7.1f}x real time ({1000 * offline / seconds:.2f} ms per s)"
    )
    print(
        f"live (20 ms pushes):    {seconds / live:7.1f}x real time ({1000 * live / (seconds / LIVE_CHUNK_S):.3f} ms per push)"
    )
    # What the model serves: a live model live pushes and blocks; a model for files
    # (never streamed live) blocks and, when it runs, its closure pass.
    speeds = {"offline": seconds / offline}
    if model.causal:
        speeds["live"] = seconds / live
    else:
        files = _files_with_closure_pass(model, audio, hear_all=args.audio is None)
        if files is not None:
            speeds["files with the closure pass"] = seconds / files
    name, worst = min(speeds.items(), key=lambda kv: kv[1])
    verdict = "ok" if worst >= TARGET_X else f"MISSED ({name} {worst:.1f}x)"
    print(f"target >= {TARGET_X:.0f}x ({', '.join(speeds)}): {verdict}")
    return 0


def _files_with_closure_pass(model: MotionModel, audio: np.ndarray, hear_all: bool) -> float | None:
    """Seconds a file takes with its closure pass (the phone recogniser and the deep
    dips, models/motion/closures.py); None when pocketsphinx is not installed.
    ``hear_all``: the recogniser hears every second, whatever the frames say."""
    from headcast.models.motion import MotionFrames, infer
    from headcast.models.motion.closures import available, close_bilabials

    if not available():
        print("files (closure pass):   not measured, pocketsphinx is not installed")
        return None

    def run(pcm: np.ndarray) -> None:
        frames = infer(model, pcm)
        if hear_all:
            frames = MotionFrames(frames.index, frames.coeffs, np.ones_like(frames.speech))
        close_bilabials(pcm, frames, model.fps)

    run(audio[: 2 * model.sample_rate])  # warm-up: loads the recogniser
    t0 = time.perf_counter()
    run(audio)
    files = time.perf_counter() - t0
    seconds = len(audio) / model.sample_rate
    what = "every second heard" if hear_all else "pauses skipped"
    print(
        f"files (closure pass):   {seconds / files:7.1f}x real time ({1000 * files / seconds:.2f} ms per s, {what})"
    )
    return files
