"""Renderer backends behind one interface (``models.render.base.Renderer``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from models.avatar.pack import load_pack
from models.onnx_session import Provider, cuda_available
from models.render.base import Renderer

Backend = Literal["warp", "warp-onnx", "auto"]


def create_renderer(
    avatar: str | Path | None = None,
    backend: str = "auto",
    size: int | None = None,
    provider: Provider = "auto",
) -> Renderer:
    """A renderer for an avatar pack folder (``None``: the built-in default avatar).

    ``backend``: ``warp`` (CPU fast path, cv2.remap), ``warp-onnx`` (the ONNX graph,
    CUDA when present), or ``auto`` (the ONNX graph on a GPU, the fast path on CPU).
    ``size`` resamples the head frame (256 or 512) when it differs from the pack's.
    """
    pack = load_pack(avatar)
    if size is not None and size != pack.size:
        from models.avatar.resize import resize_pack

        pack = resize_pack(pack, size)
    if backend == "auto":
        backend = "warp-onnx" if (provider != "cpu" and cuda_available()) else "warp"
    if backend == "warp":
        from models.render.warp import WarpRenderer

        return WarpRenderer(pack)
    if backend == "warp-onnx":
        from models.render.warp_onnx import OnnxWarpRenderer

        return OnnxWarpRenderer(pack, provider=provider)
    raise ValueError(f"unknown renderer backend {backend!r}; choose warp, warp-onnx or auto")


__all__ = ["Renderer", "create_renderer"]
