"""Renderer backends behind one interface (``models.render.base.Renderer``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from headcast.models.avatar.pack import AvatarPack, load_pack
from headcast.models.edtalk.files import Precision
from headcast.models.onnx_session import Provider, cuda_available
from headcast.models.render.base import MouthRenderer, Renderer

Backend = Literal["warp", "warp-onnx", "auto", "edtalk"]
BACKENDS: tuple[str, ...] = ("auto", "warp", "warp-onnx", "edtalk")


def create_renderer(
    avatar: str | Path | None = None,
    backend: str = "auto",
    size: int | None = None,
    provider: Provider = "auto",
    *,
    edtalk_weights: str | Path | None = None,
    precision: Precision = "fp32",
) -> Renderer:
    """A renderer for an avatar pack folder (``None``: the built-in default avatar).

    ``backend``: ``warp`` (CPU fast path, cv2.remap), ``warp-onnx`` (the ONNX graph,
    CUDA when present), or ``auto`` (the ONNX graph on a GPU, the fast path on CPU).
    ``size`` resamples the head frame (256 or 512) when it differs from the pack's.
    ``edtalk`` (the EDTalk neural generator, see docs/edtalk.md) animates the pack's
    aligned head image with the exported files in ``edtalk_weights`` at ``precision``;
    it raises :class:`models.edtalk.WeightsError` naming what is missing.
    """
    pack = load_pack(avatar)
    if backend == "edtalk":
        return _edtalk_renderer(pack, size, provider, edtalk_weights, precision)
    if size is not None and size != pack.size:
        from headcast.models.avatar.resize import resize_pack

        pack = resize_pack(pack, size)
    if backend == "auto":
        backend = "warp-onnx" if (provider != "cpu" and cuda_available()) else "warp"
    if backend == "warp":
        from headcast.models.render.warp import WarpRenderer

        return WarpRenderer(pack)
    if backend == "warp-onnx":
        from headcast.models.render.warp_onnx import OnnxWarpRenderer

        return OnnxWarpRenderer(pack, provider=provider)
    raise ValueError(f"unknown renderer backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def _edtalk_renderer(
    pack: AvatarPack,
    size: int | None,
    provider: Provider,
    weights: str | Path | None,
    precision: Precision,
) -> Renderer:
    """EDTalk on the pack's head frame (uint8 (S, S, 3), the face centred as enrolled)."""
    from headcast.models.edtalk import WeightsError, create_edtalk_renderer

    if weights is None:
        raise WeightsError("the edtalk backend needs its weights folder (--edtalk-weights DIR)")
    # The frame is the pack's head frame, so full-portrait paste-back works as for warp.
    return create_edtalk_renderer(
        weights,
        pack.image,
        size=size or pack.size,
        provider=provider,
        precision=precision,
        pack=pack,
    )


__all__ = ["BACKENDS", "MouthRenderer", "Renderer", "create_renderer"]
