"""Audio front-end: any input -> 16 kHz mono float32 -> level-normalised 80-bin log-mel."""

from __future__ import annotations


class AudioError(ValueError):
    """Input that is not usable audio; the message says why in one readable line."""


class AudioTooLong(AudioError):
    """The decoded audio passes the length the caller allows."""


__all__ = ["AudioError", "AudioTooLong"]
