"""Several instances of one renderer for concurrent users (a renderer is not assumed
thread-safe): the live server's render workers share one pool per (avatar, size)."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import cast

import numpy as np

from headcast.models.render.base import MouthRenderer, Renderer


class RendererPool:
    """Renderer instances of one (avatar, backend, size), one per concurrent user.

    A renderer is not assumed thread-safe; a worker takes an instance, renders, returns
    it. Instances are made on demand up to ``max_instances``.
    """

    def __init__(self, factory: Callable[[], Renderer], max_instances: int) -> None:
        self._factory = factory
        self._free: queue.LifoQueue[Renderer] = queue.LifoQueue()
        self._made = 0
        self._max = max_instances
        self._lock = threading.Lock()
        first = factory()
        self.size = first.size
        self._free.put(first)
        self._made = 1

    @contextlib.contextmanager
    def acquire(self) -> Iterator[Renderer]:
        try:
            r = self._free.get_nowait()
        except queue.Empty:
            with self._lock:
                make = self._made < self._max
                if make:
                    self._made += 1
            r = self._factory() if make else self._free.get()
        try:
            yield r
        finally:
            self._free.put(r)

    def render(self, coeffs: np.ndarray, mouth: np.ndarray | None = None) -> np.ndarray:
        """float32 (K,) [+ mouth float32 (20,), edtalk] -> uint8 (size, size, 3) RGB."""
        with self.acquire() as r:
            if mouth is None:
                return r.render(coeffs)
            return cast(MouthRenderer, r).render(coeffs, mouth)

    def render_batch(self, coeffs: np.ndarray, mouth: np.ndarray | None = None) -> np.ndarray:
        """float32 (B, K) [+ mouth float32 (B, 20)] -> uint8 (B, size, size, 3) RGB."""
        with self.acquire() as r:
            if mouth is None:
                return r.render_batch(coeffs)
            return cast(MouthRenderer, r).render_batch(coeffs, mouth)
