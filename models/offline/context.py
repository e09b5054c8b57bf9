"""Loaded models shared by many offline renders in one process (:class:`RenderContext`)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal

from headcast.models.model_cache import ModelCache
from headcast.models.motion import MotionModel, MotionModelError, load_motion_model
from headcast.models.offline.options import RenderError
from headcast.models.render.base import Renderer


class RenderContext:
    """Loaded models shared by many renders in one process (a :class:`ModelCache`): the
    motion model per fps and one renderer per (backend, size, thread). Thread-safe."""

    def __init__(
        self,
        avatar: str | Path | None = None,
        motion_model: str | Path | None = None,
        provider: Any = "auto",
        *,
        edtalk_weights: str | Path | None = None,
        edtalk_precision: Literal["fp32", "fp16"] = "fp32",
    ) -> None:
        self.avatar = avatar
        self.motion_path = motion_model
        self.provider = provider
        self.edtalk_weights = edtalk_weights
        self.edtalk_precision = edtalk_precision
        self._lock = threading.Lock()
        self._lips: Any = None
        #: the motion model per fps; renderers per (backend, size), one per thread
        self.models = ModelCache(self._load_motion, self._make_renderer)

    def lips(self) -> Any:
        """EDTalk's Audio2Lip runner (backend ``edtalk``), loaded once."""
        from headcast.models.edtalk import WeightsError, create_audio2lip

        with self._lock:
            if self._lips is None:
                if self.edtalk_weights is None:
                    raise RenderError("the edtalk backend needs --edtalk-weights DIR")
                try:
                    self._lips = create_audio2lip(self.edtalk_weights, provider=self.provider)
                except WeightsError as exc:
                    raise RenderError(str(exc)) from exc
            return self._lips

    def model(self, fps: int) -> MotionModel:
        model: MotionModel = self.models.motion(fps)
        return model

    def renderer(self, size: int, backend: str = "auto") -> Renderer:
        """This thread's renderer for ``size`` (made on first use)."""
        renderer: Renderer = self.models.thread_renderer(backend, size)
        return renderer

    def _load_motion(self, fps: int) -> MotionModel:
        try:
            # Files take the model for files (a wider, non-causal window) when one is shipped.
            return load_motion_model(
                self.motion_path, fps=fps, provider=self.provider, offline=True
            )
        except MotionModelError as exc:
            raise RenderError(str(exc)) from exc

    def _make_renderer(self, backend: str, size: int) -> Renderer:
        from headcast.models.avatar.errors import AvatarError
        from headcast.models.edtalk import WeightsError
        from headcast.models.render import create_renderer

        try:
            return create_renderer(
                self.avatar,
                backend=backend,
                size=size,
                provider=self.provider,
                edtalk_weights=self.edtalk_weights,
                precision=self.edtalk_precision,
            )
        except (AvatarError, WeightsError) as exc:
            raise RenderError(str(exc)) from exc
