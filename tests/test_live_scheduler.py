"""server/live/scheduler.py: render workers and GPU batching, without the network."""

from __future__ import annotations

import numpy as np

from headcast.server.live.scheduler import BatchRenderer, RendererPool


class CountingRenderer:
    def __init__(self) -> None:
        self.size = 4
        self.batches: list[int] = []

    def render(self, c: np.ndarray) -> np.ndarray:
        return np.full((4, 4, 3), int(c[0] * 100), np.uint8)

    def render_batch(self, c: np.ndarray) -> np.ndarray:
        self.batches.append(len(c))
        return np.stack([self.render(x) for x in c])


def test_batch_renderer_gathers_frames_from_several_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    renderer = CountingRenderer()
    pool = RendererPool(lambda: renderer, max_instances=1)
    batcher = BatchRenderer(window_s=0.05)
    coeffs = [np.full(38, i / 10, np.float32) for i in range(6)]
    with ThreadPoolExecutor(6) as ex:
        out = list(ex.map(lambda c: batcher.render(pool, c), coeffs))
    batcher.close()
    assert [int(o[0, 0, 0]) for o in out] == [i * 10 for i in range(6)]
    assert max(renderer.batches) > 1 and sum(renderer.batches) == 6
