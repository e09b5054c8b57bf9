"""Default model loaders: how the server builds renderers, motion and mouth models.

Each is a factory over :class:`ServerSettings`; :class:`server.state.AppState` takes
replacements (tools and tests pass their own). Also the per-frame render calibration.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from headcast.models.channels import zeros
from headcast.models.render.pool import RendererPool
from headcast.server.settings import ServerSettings

CALIBRATION_FRAMES = 8
CALIBRATION_ROUNDS = 3

RendererFactory = Callable[[str | Path | None, int], Any]
MotionLoader = Callable[[int], Any]
LipsLoader = Callable[[], Any]


def default_renderer_factory(settings: ServerSettings) -> RendererFactory:
    def make(avatar: str | Path | None, size: int) -> Any:
        from headcast.models.render import create_renderer

        return create_renderer(
            avatar,
            backend=settings.renderer_backend,
            size=size,
            provider=settings.provider,
            edtalk_weights=settings.edtalk_weights,
            precision=settings.edtalk_precision,
        )

    return make


def default_lips_loader(settings: ServerSettings) -> LipsLoader | None:
    """The renderer's own mouth model: EDTalk's Audio2Lip for ``edtalk``, else none."""
    if settings.renderer_backend != "edtalk":
        return None
    weights = settings.edtalk_weights

    def load() -> Any:
        from headcast.models.edtalk import WeightsError, create_audio2lip

        if weights is None:
            raise WeightsError("the edtalk backend needs its weights folder (edtalk_weights)")
        return create_audio2lip(weights, provider=settings.provider)

    return load


def default_lips_streamer(runner: Any) -> Any:
    from headcast.models.edtalk.stream import Audio2LipStreamer

    return Audio2LipStreamer(runner)


def default_motion_loader(settings: ServerSettings) -> MotionLoader:
    def load(fps: int) -> Any:
        from headcast.models.motion import load_motion_model

        return load_motion_model(settings.motion_model, fps=fps, provider=settings.provider)

    return load


def default_streamer(model: Any) -> Any:
    from headcast.models.motion import MotionStreamer

    return MotionStreamer(model)


def measure_render(pool: RendererPool) -> float:
    """Seconds per rendered frame at the pool's size: the best of a few rounds of a few
    frames after one warm-up (on a shared host one slow moment otherwise sets it)."""
    rng = np.random.default_rng(0)
    coeffs = zeros(CALIBRATION_FRAMES)
    coeffs[:, :16] = rng.uniform(0.0, 0.6, (CALIBRATION_FRAMES, 16))
    pool.render(coeffs[0])
    rounds = []
    for _ in range(CALIBRATION_ROUNDS):
        t0 = time.thread_time()
        for c in coeffs:
            pool.render(c)
        rounds.append((time.thread_time() - t0) / CALIBRATION_FRAMES)
    return min(rounds)
