"""Batch offline rendering: many speech files -> one MP4 each, on local cores or Ray.

* Inputs are a folder (searched recursively for audio and video files) or a glob
  pattern; outputs mirror the inputs' paths under the output folder, ``.mp4``.
* Resumable: an output that exists is finished (renders are written to a hidden
  ``.part`` file and renamed at the end), so it is skipped unless ``force``.
* A file that fails is reported with its reason and the batch goes on.
* Locally (:mod:`models.offline.pool`), ``jobs`` processes render files side by side.
* On Ray (:mod:`models.offline.ray_batch`), each file is a task that receives the audio's
  bytes and returns the MP4's bytes.

This module holds what both share: finding the inputs, skipping finished outputs,
rendering one item and reporting its result.
"""

from __future__ import annotations

import glob
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from headcast.models.offline.context import RenderContext
from headcast.models.offline.options import RenderError, RenderOptions
from headcast.models.offline.render import render_file

log = logging.getLogger(__name__)

#: extensions a folder search picks up (a glob pattern takes whatever it matches)
MEDIA_EXTENSIONS = frozenset(
    ".wav .flac .mp3 .ogg .opus .oga .m4a .aac .wma .aiff .aif .mp4 .mov .mkv .webm .avi".split()
)
GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class BatchItem:
    """One input file and the output it renders to."""

    source: Path
    output: Path


@dataclass
class ItemResult:
    """``status``: "done", "skipped" (output already there) or "failed" (``error`` says why)."""

    item: BatchItem
    status: str
    error: str = ""
    audio_s: float = 0.0
    wall_s: float = 0.0


OnResult = Callable[[ItemResult], None]


@dataclass
class BatchSummary:
    results: list[ItemResult]
    wall_s: float

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def audio_s(self) -> float:
        return sum(r.audio_s for r in self.results if r.status == "done")

    def line(self) -> str:
        done, skipped, failed = self.count("done"), self.count("skipped"), self.count("failed")
        rate = f"; {self.audio_s:.1f} s of audio in {self.wall_s:.1f} s" if done else ""
        if done and self.audio_s > 0:
            rate += f" (real-time factor {self.wall_s / self.audio_s:.3f})"
        return f"rendered {done}, skipped {skipped} (already done), failed {failed}{rate}"


def is_pattern(text: str) -> bool:
    return any(ch in GLOB_CHARS for ch in text)


def collect(spec: str, out_dir: Path) -> list[BatchItem]:
    """Inputs named by ``spec`` (a folder or a glob pattern) and their outputs in ``out_dir``.

    Raises ``ValueError`` when nothing matches or two inputs would share an output.
    """
    if is_pattern(spec):
        matches = sorted(Path(p) for p in glob.glob(spec, recursive=True))
        sources = [p for p in matches if p.is_file()]
        # Paths are kept relative to the part of the pattern before its first wildcard.
        parts = Path(spec).parts
        fixed = list(parts[: next(i for i, s in enumerate(parts) if is_pattern(s))])
        root = Path(*fixed) if fixed else Path(".")
    else:
        root = Path(spec)
        if not root.is_dir():
            raise ValueError(f"{spec}: not a folder or a glob pattern")
        files = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]
        sources = sorted(p for p in files if p.suffix.lower() in MEDIA_EXTENSIONS)
        texts = sum(1 for p in files if p.suffix.lower() == ".txt")
        if texts:
            log.warning(
                "%s: %d .txt file%s left out: a batch renders audio and video files "
                "(render a text with `headcast render FILE.txt -o OUT.mp4`)",
                spec, texts, "" if texts == 1 else "s",
            )  # fmt: skip
    out_resolved = out_dir.resolve()
    found = len(sources)
    sources = [p for p in sources if out_resolved not in p.resolve().parents]
    if not sources:
        if found:
            raise ValueError(
                f"{spec}: every input is inside the output folder {out_dir} (which holds "
                "renders, not inputs); choose another output folder"
            )
        raise ValueError(f"{spec}: no audio or video files found")
    items: list[BatchItem] = []
    seen: dict[Path, Path] = {}
    for src in sources:
        try:
            rel = src.relative_to(root)
        except ValueError:
            rel = Path(src.name)
        out = out_dir / rel.with_suffix(".mp4")
        if out in seen:
            raise ValueError(f"{seen[out]} and {src} would both render to {out}")
        seen[out] = src
        items.append(BatchItem(src, out))
    return items


def render_item(
    item: BatchItem, options: RenderOptions, context: RenderContext, motion: bool
) -> ItemResult:
    t0 = time.perf_counter()
    try:
        item.output.parent.mkdir(parents=True, exist_ok=True)
        motion_out = item.output.with_suffix(".json") if motion else None
        result = render_file(
            item.source, item.output, options, context=context, motion_out=motion_out
        )
    except RenderError as exc:
        return ItemResult(item, "failed", str(exc), wall_s=time.perf_counter() - t0)
    except Exception as exc:  # one file's unexpected failure must not end the batch
        return ItemResult(item, "failed", f"{exc.__class__.__name__}: {exc}")
    return ItemResult(item, "done", audio_s=result.audio_s, wall_s=result.wall_s)


def record(results: list[ItemResult], result: ItemResult, on_result: OnResult | None) -> None:
    """Append ``result`` and report it."""
    results.append(result)
    if on_result:
        on_result(result)


def _finished(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def pending(
    items: list[BatchItem], force: bool, on_result: OnResult | None = None, motion: bool = False
) -> tuple[list[BatchItem], list[ItemResult]]:
    """(items to render, results of those skipped because done); skips are reported.

    With ``motion``, an item is done only when its motion JSON is there too.
    """
    todo: list[BatchItem] = []
    skipped: list[ItemResult] = []
    for item in items:
        done = _finished(item.output) and (
            not motion or _finished(item.output.with_suffix(".json"))
        )
        if not force and done:
            skipped.append(ItemResult(item, "skipped"))
        else:
            todo.append(item)
    for r in skipped:
        if on_result:
            on_result(r)
    return todo, skipped
