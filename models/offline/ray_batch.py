"""Batch offline rendering on Ray: each file is a task on the cluster.

A task receives the audio's bytes and returns the MP4's bytes (and the avatar pack and
motion model travel as objects), so the nodes need headcast installed but no shared
file system.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

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

RAY_INFLIGHT_PER_CPU = 2  # Ray tasks kept in flight per cluster CPU (bounds driver memory)
RAY_CONNECT_TIMEOUT_S = 5.0  # a head that does not accept a TCP connection by then is down


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
        r = render_item(item, options, ctx, motion)
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


def _init_ray(ray: Any, address: str | None) -> None:
    """Connect to the cluster at ``address`` (None: start a local one); RayUnavailable if not."""
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


def _collect_reply(ray: Any, ref: Any, item: BatchItem, motion: bool) -> ItemResult:
    """The finished task ``ref``'s result, its video (and motion) written beside the others."""
    try:
        reply = ray.get(ref)
    except Exception as exc:  # the task or its worker died twice
        return ItemResult(item, "failed", f"Ray task failed: {exc}")
    r = ItemResult(item, reply["status"], reply["error"], reply["audio_s"])
    r.wall_s = reply["wall_s"]
    if r.status == "done":
        try:
            _write_atomic(item.output, reply["video"])
            if motion:
                _write_atomic(item.output.with_suffix(".json"), reply["motion"])
        except OSError as exc:
            r = ItemResult(item, "failed", f"{item.output}: {exc.strerror}")
    return r


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
    on_result: OnResult | None = None,
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
    todo, results = pending(items, force, on_result, motion)
    started_here = not ray.is_initialized()
    if started_here:
        _init_ray(ray, address)
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
                    failed = ItemResult(
                        item, "failed", f"{item.source}: cannot read ({exc.strerror})"
                    )
                    record(results, failed, on_result)
                    continue
                ref = task.remote(item.source.name, audio, opts, avatar_ref, model_ref, motion)
                inflight[ref] = item
            if not inflight:
                break
            ready, _ = ray.wait(list(inflight), num_returns=1)
            for ref in ready:
                item = inflight.pop(ref)
                record(results, _collect_reply(ray, ref, item, motion), on_result)
    finally:
        if started_here:
            ray.shutdown()
    return BatchSummary(results, time.perf_counter() - t0)
