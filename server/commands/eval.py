"""``headcast eval motion``: score audio-to-motion on held-out synthetic voices."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from server.errors import UserError

HELP = "evaluate a model (motion: held-out synthetic voices vs an energy baseline)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=["motion"], help="what to evaluate")
    parser.add_argument("--onnx", type=Path, help="motion .onnx (default: the shipped model)")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--utts-per-voice", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the full report as JSON here")


def run(args: argparse.Namespace) -> int:
    from models.motion import MotionModelError, load_motion_model
    from models.motion.evaluate import evaluate_sessions, heldout_sessions
    from models.training.synth import available_engines

    missing = [name for name, ok in available_engines().items() if not ok]
    if missing:
        raise UserError(
            f"speech engines missing: {', '.join(missing)} (run scripts/apt-deps.sh test)"
        )
    try:
        model = load_motion_model(args.onnx, fps=args.fps, provider="cpu")
    except MotionModelError as exc:
        raise UserError(str(exc)) from exc
    t0 = time.monotonic()
    sessions = heldout_sessions(args.utts_per_voice, args.seed, args.workers)
    report = evaluate_sessions(model, sessions)
    print(report.markdown())
    seconds = sum(len(a) for _, a, _ in sessions) / model.sample_rate
    print(
        f"\n{len(sessions)} files, {seconds / 60:.1f} min of held-out speech, {time.monotonic() - t0:.0f} s"
    )
    if args.json:
        data = report.to_dict()
        args.json.write_text(
            json.dumps(
                data,
                indent=1,
                default=lambda x: None if isinstance(x, float) and math.isnan(x) else x,
            ),
            encoding="utf-8",
        )
    return 0
