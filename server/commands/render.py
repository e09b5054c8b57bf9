"""``headcast render``: speech files -> MP4 videos of the avatar saying them.

One file::

    headcast render speech.wav --avatar face/ -o out.mp4 [--size 256|384|512|full] [--fps 25|30]
    headcast render --text "Hello there." -o out.mp4 [--voice slt]   (or a .txt file)
        [--emotion happy | --emotion timeline.json] [--pose natural|still]
        [--motion-out motion.json] [--seed N]
        [--backend edtalk --edtalk-weights DIR [--edtalk-precision fp16]]

Many files (a folder or a quoted glob pattern), resumable, on all cores or on Ray::

    headcast render 'talks/**/*.mp3' --out videos/ [--force] [--jobs N]
    headcast render talks/ --out videos/ --ray [--ray-address ray://head:10001]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

from headcast.models.sizes import FRAME_SIZES
from headcast.server.cli_args import add_renderer_arguments, bounded_int, resolve_avatar
from headcast.server.errors import UserError

HELP = "render speech files to MP4 videos of the avatar (one file, a folder or a glob; Ray)"
BAR_WIDTH = 28
X264_PRESETS = (
    "ultrafast superfast veryfast faster fast medium slow slower veryslow placebo".split()
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "speech",
        nargs="?",
        help="audio or video file (WAV, FLAC, MP3, OGG/Opus, M4A, MP4, ...), a .txt file "
        "whose text is spoken, or a folder / quoted glob pattern for a batch",
    )
    parser.add_argument("--text", help="say this text (built-in text to speech) instead")
    parser.add_argument(
        "--voice",
        help="voice for --text or a .txt file: slt (the default), rms, awb, kal (flite), "
        "espeak-en-us, espeak-en-gb (espeak-ng); an unknown name lists those installed",
    )
    parser.add_argument("-o", "--output", type=Path, help="output MP4 (one file)")
    parser.add_argument("--out", type=Path, help="output folder (batch)")
    parser.add_argument(
        "--avatar",
        help="avatar pack folder, or the name of one the server enrolled (its avatars_dir); "
        "default: the built-in avatar",
    )
    parser.add_argument(
        "--config", type=Path, help="server settings YAML whose avatars_dir holds named avatars"
    )
    parser.add_argument(
        "--size",
        default="512",
        choices=[*map(str, FRAME_SIZES), "full"],
        help="head frame side or full portrait",
    )
    parser.add_argument("--fps", type=int, default=25, choices=[25, 30])
    parser.add_argument(
        "--emotion",
        default="neutral",
        help="preset name (configs/emotions.yaml) or a JSON timeline, inline or in a "
        '.json file: [{"time": s, "emotion": name, "transition": s}, ...]',
    )
    parser.add_argument("--pose", default="natural", choices=["natural", "still"])
    parser.add_argument(
        "--motion-out",
        nargs="?",
        const="",
        metavar="JSON",
        help="also write the per-frame coefficients as JSON (no value, or a batch: "
        "NAME.json beside each video)",
    )
    parser.add_argument(
        "--seed",
        type=bounded_int(0, 2**63 - 1),
        help="seed for idle motion (default: derived from the audio)",
    )
    parser.add_argument("--model", type=Path, help="motion .onnx (default: the shipped model)")
    add_renderer_arguments(
        parser,
        backend_default="auto",
        backend_help="renderer (edtalk: the EDTalk neural generator, needs --edtalk-weights)",
        precision_default="fp32",
        precision_help="EDTalk per-frame graph precision (fp16 for CUDA)",
    )
    parser.add_argument(
        "--crf", type=bounded_int(0, 51), default=20, help="H.264 quality (lower = better)"
    )
    parser.add_argument(
        "--preset", default="veryfast", choices=X264_PRESETS, help="x264 speed preset"
    )
    parser.add_argument(
        "--threads", type=bounded_int(0, 256), default=0, help="render threads per file (0: auto)"
    )
    parser.add_argument(
        "--jobs", type=bounded_int(0, 1024), default=0, help="files rendered at once (0: cores)"
    )
    parser.add_argument("--force", action="store_true", help="re-render finished outputs")
    parser.add_argument("--ray", action="store_true", help="run the batch on Ray")
    parser.add_argument("--ray-address", help="Ray cluster address (implies --ray)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")


ETA_AFTER_S = 1.0  # no time left is estimated before this much has run ...
ETA_AFTER_FRAC = 0.01  # ... and this share of the frames is done


class ProgressBar:
    """``45% |############        | 113/250 frames  3.1x real time  ETA 0:04`` on stderr.

    Redraws in place on a terminal; elsewhere prints a line every 10 %.
    """

    def __init__(self, fps: int, out: TextIO | None = None) -> None:
        self.fps = fps
        # Looked up per bar, not at import: sys.stderr may be replaced after import.
        self.out = sys.stderr if out is None else out
        self.tty = self.out.isatty()
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._last_decile = -1
        self._staged = 0  # characters of a stage's text still on the line

    def stage(self, text: str) -> None:
        """What runs before the first frame (on a terminal only; the bar then draws over it)."""
        if self.tty:
            self.out.write("\r" + text)
            self.out.flush()
            self._staged = len(text)

    def clear(self) -> None:
        """Rub out a stage's text (before an error is printed on its line)."""
        if self.tty and self._staged:
            self.out.write("\r" + " " * self._staged + "\r")
            self.out.flush()
            self._staged = 0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        frac = done / total if total else 1.0
        if self.tty:
            if done < total and now - self._last_draw < 0.1:
                return
        else:
            decile = int(frac * 10)
            if decile == self._last_decile:
                return
            self._last_decile = decile
        self._last_draw = now
        elapsed = now - self.start
        speed = (done / self.fps) / elapsed if elapsed > 0 else 0.0
        # the first frames (models warming up, the pool filling) say nothing of the rest
        settled = done >= total or (elapsed >= ETA_AFTER_S and done >= ETA_AFTER_FRAC * total)
        eta = elapsed / done * (total - done) if done else 0.0
        eta_text = f"{int(eta // 60)}:{int(eta % 60):02d}" if settled else "-:--"
        filled = round(frac * BAR_WIDTH)
        line = (
            f"{frac * 100:3.0f}% |{'#' * filled}{' ' * (BAR_WIDTH - filled)}| "
            f"{done}/{total} frames  {speed:.1f}x real time  ETA {eta_text}"
        )
        self.out.write(("\r" + line) if self.tty else (line + "\n"))
        self._staged = 0
        if self.tty and done >= total:
            self.out.write("\n")
        self.out.flush()


def _options(args: argparse.Namespace) -> object:
    from headcast.models.offline import FULL, RenderOptions
    from headcast.models.take import EmotionCue, check_emotions, cues_from_json, load_cues

    emotion: str = args.emotion
    cues: tuple[EmotionCue, ...] = ()
    inline = emotion.lstrip().startswith(("[", "{"))
    if inline or emotion.lower().endswith(".json") or Path(emotion).is_file():
        try:
            cues = cues_from_json(emotion) if inline else load_cues(emotion)
        except (ValueError, KeyError) as exc:
            raise UserError(str(exc.args[0] if isinstance(exc, KeyError) else exc)) from exc
        emotion = "neutral"
    try:
        check_emotions(emotion, cues)
    except KeyError as exc:
        raise UserError(str(exc.args[0])) from exc
    args.avatar = resolve_avatar(args.avatar, args.config)
    if args.model is not None and not args.model.is_file():
        raise UserError(f"{args.model}: no such motion model file")
    if args.backend == "edtalk":
        from headcast.server.commands.serve import check_edtalk

        check_edtalk(args.edtalk_weights, args.edtalk_precision)
        from headcast.models.edtalk.mel import FPS as EDTALK_FPS  # Audio2Lip's training frame rate

        if args.fps != EDTALK_FPS:
            raise UserError(f"--backend edtalk renders at {EDTALK_FPS} fps, got --fps {args.fps}")
        if args.ray or args.ray_address:
            raise UserError("--backend edtalk batches run locally; leave out --ray")
    return RenderOptions(
        fps=args.fps,
        size=FULL if args.size == "full" else int(args.size),
        emotion=emotion,
        cues=cues,
        pose=args.pose,
        seed=args.seed,
        crf=args.crf,
        preset=args.preset,
        workers=args.threads,
        backend=args.backend,
    )


def _is_batch(args: argparse.Namespace) -> bool:
    from headcast.models.offline import is_pattern

    if args.out is not None and args.output is not None:
        raise UserError("give -o FILE for one output or --out DIR for a batch's folder, not both")
    if args.out is not None:
        return True
    if Path(args.speech).is_dir():
        raise UserError(
            f"{args.speech} is a folder: to render each audio file in it, give an output "
            "folder with --out DIR"
        )
    if is_pattern(args.speech) and not Path(args.speech).exists():
        raise UserError(f"{args.speech} names many files: give an output folder with --out DIR")
    return False


def _run_one(args: argparse.Namespace, options: object) -> int:
    from headcast.models.offline import RenderContext, RenderError, RenderOptions, render_file

    assert isinstance(options, RenderOptions)
    if args.output is None:
        raise UserError("give the output file with -o out.mp4 (or --out DIR for a batch)")
    if args.ray or args.ray_address:
        raise UserError("--ray renders batches: use --out DIR")
    ctx = RenderContext(
        avatar=args.avatar,
        motion_model=args.model,
        edtalk_weights=args.edtalk_weights,
        edtalk_precision=args.edtalk_precision,
    )
    motion_out = None
    if args.motion_out is not None:
        motion_out = Path(args.motion_out) if args.motion_out else args.output.with_suffix(".json")
    bar = None if args.quiet else ProgressBar(options.fps)
    if bar is not None:
        # a long file's motion is worked out whole before its first frame (seconds)
        bar.stage("decoding the speech and working out the motion...")
    try:
        result = render_file(
            args.speech, args.output, options, context=ctx, motion_out=motion_out, progress=bar
        )
    except RenderError as exc:
        if bar is not None:
            bar.clear()
        raise UserError(str(exc)) from exc
    if not args.quiet:
        print(
            f"{result.output}: {result.frames} frames {result.width}x{result.height} at "
            f"{result.fps} fps, {result.audio_s:.2f} s of audio in {result.wall_s:.2f} s "
            f"(real-time factor {result.rtf:.3f}, seed {result.seed})",
            file=sys.stderr,
        )
    return 0


def _run_batch(args: argparse.Namespace, options: object) -> int:
    from headcast.models.offline import (
        ItemResult,
        RayUnavailable,
        RenderOptions,
        collect,
        run_local,
        run_ray,
    )

    assert isinstance(options, RenderOptions)
    if args.output is not None:
        raise UserError("a batch writes into a folder: use --out DIR instead of -o")
    out_dir: Path = args.out
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{out_dir}: cannot create the output folder ({exc.strerror})") from exc
    if not os.access(out_dir, os.W_OK):
        raise UserError(f"{out_dir}: the output folder is not writable")
    try:
        items = collect(args.speech, out_dir)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    n, seen = len(items), [0]

    def report(r: ItemResult) -> None:
        seen[0] += 1
        if args.quiet and r.status != "failed":
            return
        head = f"[{seen[0]}/{n}] {r.item.source}"
        if r.status == "done":
            print(
                f"{head} -> {r.item.output} ({r.audio_s:.1f} s in {r.wall_s:.1f} s)",
                file=sys.stderr,
            )
        elif r.status == "skipped":
            print(f"{head}: skipped, {r.item.output} exists (--force re-renders)", file=sys.stderr)
        else:
            print(f"{head}: FAILED: {r.error}", file=sys.stderr)

    common: dict[str, Any] = {
        "avatar": args.avatar,
        "motion_model": args.model,
        "force": args.force,
        "motion": args.motion_out is not None,
        "on_result": report,
    }
    try:
        if args.ray or args.ray_address:
            summary = run_ray(
                items, options, address=args.ray_address, threads=max(1, args.threads), **common
            )
        else:
            summary = run_local(
                items,
                options,
                jobs=args.jobs,
                edtalk_weights=args.edtalk_weights,
                edtalk_precision=args.edtalk_precision,
                **common,
            )
    except RayUnavailable as exc:
        raise UserError(str(exc)) from exc
    except KeyboardInterrupt:
        print(
            f"stopped with {seen[0]} of {n} files finished or skipped; the same command "
            "resumes the batch (finished videos are kept and skipped)",
            file=sys.stderr,
        )
        raise
    print(summary.line(), file=sys.stderr)
    for r in summary.results:
        if r.status == "failed":
            why = r.error if str(r.item.source) in r.error else f"{r.item.source}: {r.error}"
            print(f"  failed: {why}", file=sys.stderr)
    return 1 if summary.count("failed") else 0


def run(args: argparse.Namespace) -> int:
    if args.text is None and args.speech is None:
        raise UserError("nothing to say: give a speech file (or folder / pattern), or --text")
    if args.text is not None and args.speech is not None:
        raise UserError("give one speech file (or folder / pattern), or --text, not both")
    spoken = args.text is not None or Path(args.speech).suffix.lower() == ".txt"
    if args.voice is not None and not spoken:
        raise UserError("--voice is for --text or a .txt input")
    batch = not spoken and _is_batch(args)
    options = _options(args)
    if batch:
        return _run_batch(args, options)
    if not spoken:
        return _run_one(args, options)
    if args.out is not None:
        raise UserError("text renders one file: give it with -o out.mp4")
    with tempfile.TemporaryDirectory(prefix="headcast-say-") as tmp:
        args.speech = str(_speak(args, Path(tmp) / "speech.wav"))
        return _run_one(args, options)


def _speak(args: argparse.Namespace, wav: Path) -> Path:
    """--text or the .txt file, synthesised by a built-in voice into ``wav``."""
    from headcast.models.audio import write_wav
    from headcast.models.tts import TTSError, UnknownVoice, builtin_voices, pick_voice, synthesize

    text = args.text
    if text is None:
        try:
            text = Path(args.speech).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{args.speech}: cannot read the text ({exc})") from exc
    voices = builtin_voices()
    try:
        voice = pick_voice(voices, args.voice, next(iter(voices), "slt"))
        pcm = synthesize(text, voice)
    except (UnknownVoice, TTSError) as exc:
        raise UserError(str(exc)) from exc
    return write_wav(wav, pcm)
