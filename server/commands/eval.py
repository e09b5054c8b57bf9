"""``headcast eval motion``: score audio-to-motion on held-out synthetic voices."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

from server.cli_args import positive_int, writable_file
from server.errors import UserError

if TYPE_CHECKING:
    from models.motion.model import MotionModel

HELP = "evaluate a model (motion: held-out synthetic voices vs an energy baseline)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=["motion"], help="what to evaluate")
    parser.add_argument("--onnx", type=Path, help="motion .onnx (default: the shipped model)")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--utts-per-voice", type=positive_int, default=12)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--workers", type=positive_int, default=2)
    parser.add_argument(
        "--condition", choices=["augmented", "clean", "both"], default="both",
        help="held-out speech augmented like real recordings, clean, or both (default)",
    )  # fmt: skip
    parser.add_argument(
        "--breakdown", action="store_true",
        help="instead: the clean held-out speech under each augmentation alone",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the full report(s) as JSON here")


def _nan_to_none(x: object) -> object:
    """JSON has no NaN: metrics that do not apply (no closures in a file) become null."""
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    return None if isinstance(x, float) and math.isnan(x) else x


def run(args: argparse.Namespace) -> int:
    from models.motion import MotionModelError, load_motion_model
    from models.motion.evaluate import evaluate_sessions, heldout_sessions
    from models.training.synth import available_engines

    if args.json is not None:
        writable_file(args.json, "--json")  # before minutes of evaluation, not after
    missing = [name for name, ok in available_engines().items() if not ok]
    if missing:
        raise UserError(
            f"speech engines missing: {', '.join(missing)} (run scripts/apt-deps.sh test)"
        )
    try:
        model = load_motion_model(args.onnx, fps=args.fps, provider="cpu")
    except MotionModelError as exc:
        raise UserError(str(exc)) from exc
    if args.breakdown:
        return _breakdown(model, args)
    conditions = ["augmented", "clean"] if args.condition == "both" else [args.condition]
    reports = {}
    for condition in conditions:
        t0 = time.monotonic()
        sessions = heldout_sessions(
            args.utts_per_voice, args.seed, args.workers, augmented=condition == "augmented"
        )
        report = evaluate_sessions(model, sessions)
        seconds = sum(len(a) for _, a, _ in sessions) / model.sample_rate
        print(f"\n### Held-out voices, {condition}\n")
        print(report.markdown())
        print(
            f"\n{len(sessions)} files, {seconds / 60:.1f} min of speech, "
            f"{time.monotonic() - t0:.0f} s"
        )
        reports[condition] = report.to_dict()
    _write_json(args.json, reports)
    return 0


def _write_json(path: Path | None, report: object) -> None:
    if path is not None:
        path.write_text(json.dumps(_nan_to_none(report), indent=1, allow_nan=False), "utf-8")


def _breakdown(model: MotionModel, args: argparse.Namespace) -> int:
    from models.motion.evaluate import breakdown, heldout_sessions

    t0 = time.monotonic()
    sessions = heldout_sessions(args.utts_per_voice, args.seed, args.workers, augmented=False)
    rows = breakdown(model, sessions)
    print("\n### Held-out voices, each augmentation alone (model)\n")
    print("| condition | r | closure | silence |\n|---|---|---|---|")
    for name, m in rows.items():
        print(
            f"| {name} | {m['r']:.3f} | {100 * m['closure']:.1f} % | {100 * m['silence']:.1f} % |"
        )
    print(f"\n{len(sessions)} files, {time.monotonic() - t0:.0f} s")
    _write_json(args.json, rows)
    return 0
