"""The renderer interface every backend implements (``warp``, ``edtalk``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from headcast.models.avatar.pack import AvatarPack


class Renderer(Protocol):
    """Coefficients in, RGB frames out.

    ``coeffs`` are ordered as :data:`models.channels.ALL_CHANNELS`.
    """

    #: output frame side in pixels (frames are square, ``size x size``)
    size: int

    @property
    def pack(self) -> AvatarPack | None:
        """The avatar pack its frames come from (its head frame, landmarks and portrait,
        for pasting frames back into the whole portrait); None for a bare portrait."""
        ...

    def render(self, coeffs: np.ndarray) -> np.ndarray:
        """float32 (K,) -> uint8 (size, size, 3) RGB."""
        ...

    def render_batch(self, coeffs: np.ndarray) -> np.ndarray:
        """float32 (B, K) -> uint8 (B, size, size, 3) RGB; one call for several sessions."""
        ...


class MouthRenderer(Renderer, Protocol):
    """A renderer that also takes mouth weights from its own audio model (``edtalk``).

    ``mouth``: float32 (20,) / (B, 20) EDTalk Audio2Lip weights per frame, or None for
    the portrait's own mouth.
    """

    def render(self, coeffs: np.ndarray, mouth: np.ndarray | None = None) -> np.ndarray: ...

    def render_batch(self, coeffs: np.ndarray, mouth: np.ndarray | None = None) -> np.ndarray: ...
