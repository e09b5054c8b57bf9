"""Loaded models, each built once and shared: the one object the live server, its render
processes and offline rendering keep their motion models and renderers in.

Motion models are thread-safe (ONNX Runtime sessions) and shared by everyone; a
renderer is not, so it comes three ways: one instance per key for a single user (a
render process runs its pipelines one call at a time), one per calling thread (offline
rendering's frame workers), or a :class:`~models.render.pool.RendererPool` of several
instances for the live server's render workers. Keys are ``(source, size)``: the avatar
(or, offline, the backend) and the frame side.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

from headcast.models.render.pool import RendererPool


class ModelCache:
    """``load_motion(fps)`` and ``make_renderer(source, size)`` are called once per key
    (per thread for :meth:`thread_renderer`); thread-safe. Loading runs outside the lock,
    so different models load at the same time; two threads asking for the same new key
    at once may both build it, and one result is kept."""

    def __init__(
        self, load_motion: Callable[[int], Any], make_renderer: Callable[[Any, int], Any]
    ) -> None:
        self.load_motion = load_motion
        self.make_renderer = make_renderer
        self._lock = threading.Lock()
        self._motion: dict[int, Any] = {}
        self._renderers: dict[tuple[Hashable, int], Any] = {}
        self._pools: dict[tuple[Hashable, int], RendererPool] = {}
        self._local = threading.local()

    def motion(self, fps: int) -> Any:
        """The motion model at ``fps``, loaded on first use."""
        if fps not in self._motion:
            model = self.load_motion(fps)
            with self._lock:
                self._motion.setdefault(fps, model)
        return self._motion[fps]

    def has_motion(self, fps: int) -> bool:
        return fps in self._motion

    def renderer(self, source: Hashable, size: int) -> Any:
        """The one shared renderer of ``(source, size)``; for a single user at a time."""
        key = (source, size)
        if key not in self._renderers:
            made = self.make_renderer(source, size)
            with self._lock:
                self._renderers.setdefault(key, made)
        return self._renderers[key]

    def has_renderer(self, source: Hashable, size: int) -> bool:
        return (source, size) in self._renderers

    def thread_renderer(self, source: Hashable, size: int) -> Any:
        """This thread's own renderer of ``(source, size)``."""
        mine: dict[tuple[Hashable, int], Any] | None = getattr(self._local, "renderers", None)
        if mine is None:
            mine = self._local.renderers = {}
        if (source, size) not in mine:
            mine[source, size] = self.make_renderer(source, size)
        return mine[source, size]

    def pool(self, source: Hashable, size: int, instances: int) -> RendererPool:
        """A pool of up to ``instances`` renderers of ``(source, size)`` (one made now)."""
        key = (source, size)
        if key not in self._pools:
            made = RendererPool(lambda: self.make_renderer(source, size), instances)
            with self._lock:
                self._pools.setdefault(key, made)
        return self._pools[key]

    def pools(self) -> dict[tuple[Hashable, int], RendererPool]:
        """Every pool made so far, by key."""
        with self._lock:
            return dict(self._pools)
