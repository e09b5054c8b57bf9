"""Audio front-end: any input -> 16 kHz mono float32 -> level-normalised 80-bin log-mel."""

from __future__ import annotations


class AudioError(ValueError):
    """Input that is not usable audio; the message says why in one readable line."""


__all__ = ["AudioError"]
