"""Loaded models shared by many offline renders in one process (:class:`RenderContext`)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal

from headcast.models.motion import MotionModel, MotionModelError, load_motion_model
from headcast.models.offline.options import RenderError
from headcast.models.render.base import Renderer


class RenderContext:
    """Loaded models shared by many renders in one process: the motion model per fps
    and one renderer per (avatar, size, thread). Thread-safe."""

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
        self._models: dict[int, MotionModel] = {}
        self._lips: Any = None
        self._local = threading.local()

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
        with self._lock:
            if fps not in self._models:
                try:
                    self._models[fps] = load_motion_model(
                        self.motion_path, fps=fps, provider=self.provider
                    )
                except MotionModelError as exc:
                    raise RenderError(str(exc)) from exc
            return self._models[fps]

    def renderer(self, size: int, backend: str = "auto") -> Renderer:
        """This thread's renderer for ``size`` (made on first use)."""
        cache: dict[tuple[int, str], Renderer] | None = getattr(self._local, "renderers", None)
        if cache is None:
            cache = self._local.renderers = {}
        key = (size, backend)
        if key not in cache:
            from headcast.models.avatar.errors import AvatarError
            from headcast.models.edtalk import WeightsError
            from headcast.models.render import create_renderer

            try:
                cache[key] = create_renderer(
                    self.avatar,
                    backend=backend,
                    size=size,
                    provider=self.provider,
                    edtalk_weights=self.edtalk_weights,
                    precision=self.edtalk_precision,
                )
            except (AvatarError, WeightsError) as exc:
                raise RenderError(str(exc)) from exc
        return cache[key]
