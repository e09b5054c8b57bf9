"""models/model_cache.py: each model built once per key, renderers per thread or pooled."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from headcast.models.model_cache import ModelCache


class Renderer:
    def __init__(self, source: Any, size: int) -> None:
        self.source, self.size = source, size

    def render(self, coeffs: np.ndarray) -> np.ndarray:
        return np.zeros((self.size, self.size, 3), np.uint8)


def test_models_are_built_once_per_key_and_renderers_per_thread() -> None:
    built: list[Any] = []

    def load(fps: int) -> str:
        built.append(("motion", fps))
        return f"model@{fps}"

    def make(source: Any, size: int) -> Renderer:
        built.append(("renderer", source, size))
        return Renderer(source, size)

    cache = ModelCache(load, make)
    assert not cache.has_motion(25)
    assert cache.motion(25) == cache.motion(25) == "model@25" and cache.has_motion(25)
    shared = cache.renderer("a", 256)
    assert cache.renderer("a", 256) is shared and cache.renderer("a", 512) is not shared
    assert cache.has_renderer("a", 256) and not cache.has_renderer("b", 256)
    mine = cache.thread_renderer("a", 256)
    assert cache.thread_renderer("a", 256) is mine
    other: list[Any] = []
    t = threading.Thread(target=lambda: other.append(cache.thread_renderer("a", 256)))
    t.start()
    t.join()
    assert other[0] is not mine  # each thread its own
    pool = cache.pool("a", 256, instances=2)
    assert cache.pool("a", 256, instances=2) is pool and pool.size == 256
    assert cache.pools() == {("a", 256): pool}
    assert built.count(("motion", 25)) == 1
    assert built.count(("renderer", "a", 256)) == 4  # shared, this thread, the other, pool
