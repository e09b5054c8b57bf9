"""Batch offline rendering: many speech files -> one MP4 each, on local cores or Ray.

* Inputs are a folder (searched recursively for audio and video files) or a glob
  pattern; outputs mirror the inputs' paths under the output folder, ``.mp4``.
* Resumable: an output that exists is finished (renders are written to a hidden
  ``.part`` file and renamed at the end), so it is skipped unless ``force``.
* A file that fails is reported with its reason and the batch goes on.
* Locally, ``jobs`` processes render files side by side (one file per process uses
  ``threads`` render threads), so all cores stay busy even between a file's stages.
* On Ray, each file is a task that receives the audio's bytes and returns the MP4's
  bytes (and the avatar pack and motion model travel as objects), so the nodes need
  headcast installed but no shared file system.
"""

from __future__ import annotations

import glob
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

from models.offline import RenderContext, RenderError, RenderOptions, render_file

#: extensions a folder search picks up (a glob pattern takes whatever it matches)
MEDIA_EXTENSIONS = frozenset(
    ".wav .flac .mp3 .ogg .opus .oga .m4a .aac .wma .aiff .aif .mp4 .mov .mkv .webm .avi".split()
)
GLOB_CHARS = frozenset("*?[")
RAY_INFLIGHT_PER_CPU = 2  # Ray tasks kept in flight per cluster CPU (bounds driver memory)
RAY_CONNECT_TIMEOUT_S = 5.0  # a head that does not accept a TCP connection by then is down


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
        sources = sorted(
            p
            for p in root.rglob("*")
            if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS and not p.name.startswith(".")
        )
    out_resolved = out_dir.resolve()
    sources = [p for p in sources if out_resolved not in p.resolve().parents]
    if not sources:
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


def _render_item(
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


# ---- local process pool ----------------------------------------------------------------

_PROCESS_CONTEXT: RenderContext | None = None


def _init_process(
    avatar: str | None,
    model: str | None,
    edtalk_weights: str | None = None,
    edtalk_precision: Literal["fp32", "fp16"] = "fp32",
) -> None:
    # One context per worker process: models load once and serve all its files.
    global _PROCESS_CONTEXT
    _PROCESS_CONTEXT = RenderContext(
        avatar=avatar,
        motion_model=model,
        provider="cpu",
        edtalk_weights=edtalk_weights,
        edtalk_precision=edtalk_precision,
    )


def _process_task(item: BatchItem, options: RenderOptions, motion: bool) -> ItemResult:
    assert _PROCESS_CONTEXT is not None
    return _render_item(item, options, _PROCESS_CONTEXT, motion)


def _pending(items: list[BatchItem], force: bool) -> tuple[list[BatchItem], list[ItemResult]]:
    todo, skipped = [], []
    for item in items:
        if not force and item.output.is_file() and item.output.stat().st_size > 0:
            skipped.append(ItemResult(item, "skipped"))
        else:
            todo.append(item)
    return todo, skipped


def run_local(
    items: list[BatchItem],
    options: RenderOptions,
    *,
    avatar: str | Path | None = None,
    motion_model: str | Path | None = None,
    jobs: int = 0,
    force: bool = False,
    motion: bool = False,
    on_result: Callable[[ItemResult], None] | None = None,
    edtalk_weights: str | Path | None = None,
    edtalk_precision: Literal["fp32", "fp16"] = "fp32",
) -> BatchSummary:
    """Render ``items`` with ``jobs`` processes (0 = one per core, at most one per file)."""
    t0 = time.perf_counter()
    todo, results = _pending(items, force)
    for r in results:
        if on_result:
            on_result(r)
    cores = os.cpu_count() or 1
    jobs = max(1, min(jobs or cores, len(todo) or 1))
    opts = replace(options, workers=options.workers or max(1, cores // jobs))
    av_arg = None if avatar is None else str(avatar)
    model_arg = None if motion_model is None else str(motion_model)
    if jobs == 1:
        ctx = RenderContext(
            avatar=avatar,
            motion_model=motion_model,
            provider="cpu",
            edtalk_weights=edtalk_weights,
            edtalk_precision=edtalk_precision,
        )
        for item in todo:
            r = _render_item(item, opts, ctx, motion)
            results.append(r)
            if on_result:
                on_result(r)
        return BatchSummary(results, time.perf_counter() - t0)
    # spawn: the parent holds threads (ONNX Runtime, OpenCV) that fork would copy mid-state
    with ProcessPoolExecutor(
        jobs,
        mp_context=get_context("spawn"),
        initializer=_init_process,
        initargs=(
            av_arg,
            model_arg,
            None if edtalk_weights is None else str(edtalk_weights),
            edtalk_precision,
        ),
    ) as pool:
        futures = {pool.submit(_process_task, item, opts, motion): item for item in todo}
        for fut in _as_completed(futures):
            try:
                r = fut.result()
            except Exception as exc:  # a worker process that died
                r = ItemResult(futures[fut], "failed", f"worker failed: {exc}")
            results.append(r)
            if on_result:
                on_result(r)
    return BatchSummary(results, time.perf_counter() - t0)


def _as_completed(futures: dict[Future[ItemResult], BatchItem]) -> Iterator[Future[ItemResult]]:
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        yield from done


# ---- Ray ---------------------------------------------------------------------------------


class RayUnavailable(RuntimeError):
    """Ray is not installed (``pip install 'headcast[ray]'``) or the cluster is unreachable."""


def _check_reachable(address: str) -> None:
    """``host:port`` or ``ray://host:port``: RayUnavailable unless it accepts TCP connections.

    Ray itself retries an unreachable head for minutes; this answers in seconds.
    """
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), RAY_CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise RayUnavailable(f"cannot reach the Ray cluster at {address}: {exc}") from exc


def _read_dir(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}


_RAY_CACHE: dict[str, Any] = {}


def _ray_render(
    name: str,
    audio: bytes,
    options: RenderOptions,
    avatar_files: dict[str, bytes] | None,
    model_bytes: bytes | None,
    motion: bool,
) -> dict[str, Any]:
    """Runs on a Ray worker: bytes in, ``{"status", "error", "video", "motion", ...}`` out."""
    with tempfile.TemporaryDirectory(prefix="headcast-ray-") as tmp:
        folder = Path(tmp)
        avatar = None
        if avatar_files is not None:
            avatar = folder / "avatar"
            avatar.mkdir()
            for fname, data in avatar_files.items():
                (avatar / fname).write_bytes(data)
        model = None
        if model_bytes is not None:
            model = folder / "motion.onnx"
            model.write_bytes(model_bytes)
        # The built-in avatar and model stay loaded in the worker between tasks.
        shared = avatar is None and model is None
        ctx = _RAY_CACHE.get("default") if shared else None
        if ctx is None:
            ctx = RenderContext(avatar=avatar, motion_model=model, provider="cpu")
            if shared:
                _RAY_CACHE["default"] = ctx
        src = folder / ("input" + Path(name).suffix)
        src.write_bytes(audio)
        out = folder / "out.mp4"
        item = BatchItem(src, out)
        r = _render_item(item, options, ctx, motion)
        error = r.error.replace(str(src), name)
        reply: dict[str, Any] = {"status": r.status, "error": error, "audio_s": r.audio_s}
        reply["wall_s"] = r.wall_s
        if r.status == "done":
            reply["video"] = out.read_bytes()
            if motion:
                reply["motion"] = out.with_suffix(".json").read_bytes()
        return reply


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def run_ray(
    items: list[BatchItem],
    options: RenderOptions,
    *,
    address: str | None = None,
    avatar: str | Path | None = None,
    motion_model: str | Path | None = None,
    force: bool = False,
    motion: bool = False,
    threads: int = 1,
    on_result: Callable[[ItemResult], None] | None = None,
) -> BatchSummary:
    """Render ``items`` as Ray tasks on the cluster at ``address`` (None: start a local one).

    Each task asks for ``threads`` CPUs and renders with as many threads.
    """
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable(
            "Ray is not installed; install it with: pip install 'headcast[ray]'"
        ) from exc
    t0 = time.perf_counter()
    todo, results = _pending(items, force)
    for r in results:
        if on_result:
            on_result(r)
    started_here = not ray.is_initialized()
    if started_here:
        try:
            if address:
                _check_reachable(address)
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            else:
                ray.init(
                    num_cpus=os.cpu_count() or 1,
                    include_dashboard=False,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RayUnavailable(f"cannot reach the Ray cluster at {address}: {exc}") from exc
    try:
        opts = replace(options, workers=threads)
        task = ray.remote(num_cpus=threads, max_retries=1)(_ray_render)
        avatar_ref: Any = ray.put(_read_dir(Path(avatar))) if avatar is not None else None
        model_ref: Any = (
            ray.put(Path(motion_model).read_bytes()) if motion_model is not None else None
        )
        limit = max(2, int(ray.cluster_resources().get("CPU", 1)) * RAY_INFLIGHT_PER_CPU)
        inflight: dict[Any, BatchItem] = {}
        queue = list(reversed(todo))
        while queue or inflight:
            while queue and len(inflight) < limit:
                item = queue.pop()
                try:
                    audio = item.source.read_bytes()
                except OSError as exc:
                    r = ItemResult(item, "failed", f"{item.source}: cannot read ({exc.strerror})")
                    results.append(r)
                    if on_result:
                        on_result(r)
                    continue
                ref = task.remote(item.source.name, audio, opts, avatar_ref, model_ref, motion)
                inflight[ref] = item
            if not inflight:
                break
            ready, _ = ray.wait(list(inflight), num_returns=1)
            for ref in ready:
                item = inflight.pop(ref)
                try:
                    reply = ray.get(ref)
                except Exception as exc:  # the task or its worker died twice
                    r = ItemResult(item, "failed", f"Ray task failed: {exc}")
                else:
                    r = ItemResult(item, reply["status"], reply["error"], reply["audio_s"])
                    r.wall_s = reply["wall_s"]
                    if r.status == "done":
                        try:
                            _write_atomic(item.output, reply["video"])
                            if motion:
                                _write_atomic(item.output.with_suffix(".json"), reply["motion"])
                        except OSError as exc:
                            r = ItemResult(item, "failed", f"{item.output}: {exc.strerror}")
                results.append(r)
                if on_result:
                    on_result(r)
    finally:
        if started_here:
            ray.shutdown()
    return BatchSummary(results, time.perf_counter() - t0)
