"""Batch offline rendering on local cores: ``jobs`` processes render files side by side.

One file per process uses ``threads`` render threads, so all cores stay busy even
between a file's stages.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path
from typing import Literal

from headcast.models.offline.batch import (
    BatchItem,
    BatchSummary,
    ItemResult,
    OnResult,
    pending,
    record,
    render_item,
)
from headcast.models.offline.context import RenderContext
from headcast.models.offline.options import RenderOptions

_PROCESS_CONTEXT: RenderContext | None = None
_BUSY = False  # a worker is rendering a file
_STOPPING = False  # a worker was told to stop
PARENT_POLL_S = 1.0  # how often a worker checks that the batch's process is alive
STOP_GRACE_S = 5.0  # an interrupted worker's time to remove its partial output


def _cpu_context(
    avatar: str | Path | None,
    model: str | Path | None,
    edtalk_weights: str | Path | None,
    edtalk_precision: Literal["fp32", "fp16"],
) -> RenderContext:
    return RenderContext(
        avatar=avatar,
        motion_model=model,
        provider="cpu",
        edtalk_weights=edtalk_weights,
        edtalk_precision=edtalk_precision,
    )


def _on_terminate(signum: int, frame: object) -> None:
    global _STOPPING
    if _STOPPING:
        return  # already unwinding: a second signal must not cut the clean-up short
    _STOPPING = True
    if _BUSY:
        raise KeyboardInterrupt(f"signal {signum}")  # the render unwinds, removing its .part
    os._exit(0)


def _exit_with_parent(parent: int) -> None:
    """End this worker soon after the batch's process is gone (killed, not interrupted)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    if _BUSY:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(STOP_GRACE_S)
    os._exit(1)


def _init_process(
    avatar: str | None,
    model: str | None,
    edtalk_weights: str | None = None,
    edtalk_precision: Literal["fp32", "fp16"] = "fp32",
    parent: int = 0,
) -> None:
    # Ctrl-C reaches the whole process group: the parent alone handles it and stops the
    # workers with SIGTERM, on which a render unwinds and removes its .part file.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_terminate)
    if parent:
        threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    # One context per worker process: models load once and serve all its files.
    global _PROCESS_CONTEXT
    _PROCESS_CONTEXT = _cpu_context(avatar, model, edtalk_weights, edtalk_precision)


def _process_task(item: BatchItem, options: RenderOptions, motion: bool) -> ItemResult:
    global _BUSY
    assert _PROCESS_CONTEXT is not None
    _BUSY = True
    try:
        return render_item(item, options, _PROCESS_CONTEXT, motion)
    finally:
        _BUSY = False
        if _STOPPING:  # stopped mid-file: take no further file from the queue
            os._exit(0)


def _as_completed(futures: dict[Future[ItemResult], BatchItem]) -> Iterator[Future[ItemResult]]:
    waiting = set(futures)
    while waiting:
        done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
        yield from done


def run_local(
    items: list[BatchItem],
    options: RenderOptions,
    *,
    avatar: str | Path | None = None,
    motion_model: str | Path | None = None,
    jobs: int = 0,
    force: bool = False,
    motion: bool = False,
    on_result: OnResult | None = None,
    edtalk_weights: str | Path | None = None,
    edtalk_precision: Literal["fp32", "fp16"] = "fp32",
) -> BatchSummary:
    """Render ``items`` with ``jobs`` processes (0 = one per core, at most one per file)."""
    t0 = time.perf_counter()
    todo, results = pending(items, force, on_result, motion)
    cores = os.cpu_count() or 1
    jobs = max(1, min(jobs or cores, len(todo) or 1))
    opts = replace(options, workers=options.workers or max(1, cores // jobs))
    if jobs == 1:
        ctx = _cpu_context(avatar, motion_model, edtalk_weights, edtalk_precision)
        for item in todo:
            record(results, render_item(item, opts, ctx, motion), on_result)
        return BatchSummary(results, time.perf_counter() - t0)
    # spawn: the parent holds threads (ONNX Runtime, OpenCV) that fork would copy mid-state
    pool = ProcessPoolExecutor(
        jobs,
        mp_context=get_context("spawn"),
        initializer=_init_process,
        initargs=(
            None if avatar is None else str(avatar),
            None if motion_model is None else str(motion_model),
            None if edtalk_weights is None else str(edtalk_weights),
            edtalk_precision,
            os.getpid(),
        ),
    )
    try:
        futures = {pool.submit(_process_task, item, opts, motion): item for item in todo}
        for fut in _as_completed(futures):
            try:
                r = fut.result()
            except Exception as exc:  # a worker process that died
                r = ItemResult(futures[fut], "failed", f"worker failed: {exc}")
            record(results, r, on_result)
    except BaseException:
        _stop(pool)  # interrupted: files not started stay unstarted, running ones stop now
        raise
    pool.shutdown()
    return BatchSummary(results, time.perf_counter() - t0)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel queued files and stop the workers; each removes its unfinished output."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
