"""Where the compute runs: render workers, GPU batching and admission control.

* CPU: a thread pool sized to the cores. cv2, ONNX Runtime and PyAV release the GIL,
  so threads use every core; batching saves nothing there (measured), so each session
  tick renders its own frame.
* GPU: ticks still run on the pool, but renders go through one :class:`BatchRenderer`
  thread that gathers every session's frame for the tick and runs one
  ``render_batch`` per renderer.
* Admission (:mod:`server.live.admission`, which :class:`Scheduler` extends): which
  sessions fit, from measured costs.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, Unpack

import numpy as np

from headcast.models.render.pool import RendererPool
from headcast.server.live.admission import Admission, AdmissionLimits

T = TypeVar("T")
#: (coeffs float32 (K,), mouth float32 (20,) | None) -> uint8 (S, S, 3) RGB
RenderFn = Callable[[np.ndarray, np.ndarray | None], np.ndarray]
BATCH_WINDOW_S = 0.004  # how long the batch worker waits for more sessions' frames


@dataclass
class _BatchItem:
    pool: RendererPool
    coeffs: np.ndarray
    mouth: np.ndarray | None
    future: Future[np.ndarray]


class BatchRenderer:
    """One thread that renders every session's frames of a tick in batches per renderer."""

    def __init__(self, window_s: float = BATCH_WINDOW_S) -> None:
        self.window_s = window_s
        self._q: queue.Queue[_BatchItem | None] = queue.Queue()
        self.batches = 0
        self.frames = 0
        self._thread = threading.Thread(target=self._run, name="render-batch", daemon=True)
        self._thread.start()

    def render(
        self, pool: RendererPool, coeffs: np.ndarray, mouth: np.ndarray | None = None
    ) -> np.ndarray:
        """Blocking, from a worker thread: float32 (K,) [+ mouth (20,)] -> uint8 (S, S, 3)."""
        fut: Future[np.ndarray] = Future()
        self._q.put(_BatchItem(pool, coeffs, mouth, fut))
        return fut.result()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            items = [item]
            deadline = time.monotonic() + self.window_s
            while (left := deadline - time.monotonic()) > 0:
                try:
                    nxt = self._q.get(timeout=left)
                except queue.Empty:
                    break
                if nxt is None:
                    self._q.put(None)
                    break
                items.append(nxt)
            groups: dict[tuple[int, bool], list[_BatchItem]] = {}
            for it in items:
                groups.setdefault((id(it.pool), it.mouth is None), []).append(it)
            for group in groups.values():
                coeffs = np.stack([g.coeffs for g in group])
                mouths = [g.mouth for g in group if g.mouth is not None]
                try:
                    out = group[0].pool.render_batch(coeffs, np.stack(mouths) if mouths else None)
                except Exception as exc:
                    for g in group:
                        g.future.set_exception(exc)
                    continue
                self.batches += 1
                self.frames += len(group)
                for g, img in zip(group, out, strict=True):
                    g.future.set_result(img)

    def close(self) -> None:
        self._q.put(None)
        self._thread.join(timeout=2.0)


class Scheduler(Admission):
    """Worker pool + optional GPU batcher, with admission control for all sessions."""

    def __init__(
        self, workers: int = 0, *, batch: bool = False, **limits: Unpack[AdmissionLimits]
    ) -> None:
        super().__init__(**limits)
        self.workers = workers or self.cores
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="headcast-worker")
        self.batcher = BatchRenderer() if batch else None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on a worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def render_fn(self, pool: RendererPool) -> RenderFn:
        """The per-frame render call sessions use: direct, or through the batcher."""
        if self.batcher is None:
            return pool.render
        batcher = self.batcher

        def render(coeffs: np.ndarray, mouth: np.ndarray | None = None) -> np.ndarray:
            return batcher.render(pool, coeffs, mouth)

        return render

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        self.pool.shutdown(wait=True, cancel_futures=True)
