"""``headcast train motion``: the whole audio-to-motion recipe in one command."""

from __future__ import annotations

import argparse
import importlib.util
import shlex
from pathlib import Path

from headcast.server.cli_args import writable_file
from headcast.server.errors import UserError

OFFLINE_LOOKAHEAD_MS = 200  # the file model's look-ahead: +-200 ms around a frame with
# the 590 ms of past the receptive field leaves
HELP = "train a model from scratch (motion: audio-to-motion on recorded and synthesised speech)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=["motion"], help="what to train")
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        help="output .onnx (default: the shipped model path; with --tiny out/motion-tiny.onnx)",
    )
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run (CI)")
    parser.add_argument(
        "--offline", action="store_true",
        help=f"the model for files: look-ahead {OFFLINE_LOOKAHEAD_MS} ms, written to "
        "motion-offline.onnx beside the live model unless -o says otherwise",
    )  # fmt: skip
    parser.add_argument("--steps", type=int, help="optimiser steps")
    parser.add_argument(
        "--utts-per-voice", type=int, help="synthesised utterances per training voice"
    )
    parser.add_argument("--copies", type=int, help="augmented copies per session")
    parser.add_argument("--lookahead-ms", type=int, help="model look-ahead in ms (multiple of 10)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--workers", type=int, help="data synthesis processes")
    parser.add_argument("--threads", type=int, help="torch threads for training")
    parser.add_argument(
        "--minutes",
        type=float,
        help="training time budget in minutes (default 30; data preparation excluded)",
    )
    parser.add_argument(
        "--data-cache", type=Path, help="reuse/keep synthesised data in this folder"
    )
    parser.add_argument(
        "--checkpoint", type=Path, help="export a checkpoint .onnx here while training"
    )
    parser.add_argument(
        "--init", type=Path,
        help="start from this exported motion model's weights (fine-tuning) instead of random",
    )  # fmt: skip
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument(
        "--real-share", type=float, help="share of training crops drawn from recorded speech"
    )
    parser.add_argument(
        "--closure-pos-weight", type=float, help="BCE positive weight of the closure head"
    )
    parser.add_argument(
        "--warp", type=float,
        help="vocal-tract warp: each crop's mel axis stretched by 1 +- up to this (default 0.15; 0: off)",
    )  # fmt: skip
    parser.add_argument(
        "--freq-mask", type=int,
        help="frequency masking: two bands of up to this many mel bins per crop (default 8; 0: off)",
    )  # fmt: skip
    parser.add_argument(
        "--game-clips", type=int,
        help="Flight of the Amazon Queen clips to train on (default 1500 of ~4500, ~65 of ~190 "
        "minutes: the command from nothing stays within an hour on two cores)",
    )  # fmt: skip
    parser.add_argument(
        "--hesitations", action="store_true", default=None,
        help="add hesitant and whispered synthetic speech: filled pauses ('uh', 'um') "
        "between utterances, espeak-ng's whisper voices",
    )  # fmt: skip
    parser.add_argument(
        "--speakers", type=lambda s: tuple(x for x in s.split(",") if x),
        help="recorded speakers to train on, comma-separated (default: "
        "en,es,fr,it,drascula,fotaq: four Asterisk voices and two games' casts; "
        "'klettres' adds KLettres' 16 speakers of letters and syllables, 'tuxpaint' Tux "
        "Paint's 8 languages of spoken stamp descriptions)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from headcast.models.config import problems

    if importlib.util.find_spec("torch") is None:
        raise UserError("training needs torch: pip install -r requirements/dev.txt")
    from headcast.models.training.synth import available_engines
    from headcast.models.training.train import TrainConfig, TrainingDataError, train

    overrides = {
        k: getattr(args, k)
        for k in ("out", "steps", "utts_per_voice", "copies", "lookahead_ms", "seed", "workers",
                  "threads", "minutes", "checkpoint", "data_cache", "init", "lr", "real_share",
                  "closure_pos_weight", "speakers", "warp", "freq_mask", "game_clips",
                  "hesitations")
        if getattr(args, k) is not None
    }  # fmt: skip
    given = dict(overrides)  # what the recorded command line repeats
    if args.offline:
        from headcast.models.motion.model import OFFLINE_MODEL

        overrides.setdefault("lookahead_ms", OFFLINE_LOOKAHEAD_MS)
        if not args.tiny:
            overrides.setdefault("out", OFFLINE_MODEL)
    try:
        if args.tiny:
            base = TrainConfig.tiny(args.out or Path("out/motion-tiny.onnx"))
            cfg = TrainConfig.model_validate({**base.model_dump(), **overrides})
        else:
            cfg = TrainConfig(**overrides)
    except ValidationError as exc:
        raise UserError(f"invalid training settings: {problems(exc)}") from exc
    if cfg.lookahead_ms % 10:
        raise UserError("--lookahead-ms must be a multiple of 10 (one mel frame)")
    _check_writable(cfg.out, "-o")
    if cfg.checkpoint is not None:
        _check_writable(cfg.checkpoint, "--checkpoint")
    if cfg.data_cache is not None:
        _check_folder(cfg.data_cache, "--data-cache")
        writable_file(cfg.data_cache / "probe", "--data-cache")
    missing = [name for name, ok in available_engines().items() if not ok]
    if missing:
        raise UserError(
            f"speech engines missing: {', '.join(missing)} (run scripts/apt-deps.sh test)"
        )
    if cfg.init is not None and not cfg.init.is_file():
        raise UserError(f"--init {cfg.init}: no such file")
    if cfg.real_copies:
        _ensure_recorded_speech(cfg.speakers)
    flags = (["--tiny"] if args.tiny else []) + (["--offline"] if args.offline else [])
    for key, value in given.items():
        text = ",".join(value) if isinstance(value, tuple) else str(value)
        flags += [f"--{key.replace('_', '-')}", text]
    command = shlex.join(["headcast", "train", "motion", *flags])
    try:
        path = train(cfg, command)
    except TrainingDataError as exc:  # e.g. too little data for one training crop
        raise UserError(f"training stopped: {exc}") from exc
    print(path)
    return 0


def _ensure_recorded_speech(speakers: tuple[str, ...]) -> None:
    """The recorded prompts come from Debian packages: install them (apt-get, as root or
    through passwordless sudo) when missing, unpack the games' (``apt-get download``),
    or stop with what to install."""
    if importlib.util.find_spec("pocketsphinx") is None:
        raise UserError("forced alignment needs pocketsphinx: pip install -r requirements/dev.txt")
    from headcast.models.training.corpora import CORPORA, GAMES
    from headcast.models.training.real import (
        PACKAGES,
        RealSpeechMissing,
        install_packages,
        missing_packages,
    )

    wanted = tuple(
        dict.fromkeys(PACKAGES + tuple(p for k in speakers for p in CORPORA[k].packages))
    )
    try:
        install_packages(missing_packages(wanted))
        for key in speakers:
            if CORPORA[key].kind in GAMES:
                CORPORA[key].texts()  # fetched and unpacked the first time
    except RealSpeechMissing as exc:
        raise UserError(str(exc)) from exc


def _check_writable(path: Path, flag: str) -> None:
    """Before an hour of training: the model file can be written where asked."""
    _check_folder(path.parent, flag, what=str(path))
    writable_file(path, flag)


def _check_folder(folder: Path, flag: str, what: str | None = None) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"{flag} {what or folder}: cannot create {folder} ({exc.strerror})"
        ) from exc
