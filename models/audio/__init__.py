"""Audio front-end: any input -> 16 kHz mono float32 -> level-normalised 80-bin log-mel."""

from __future__ import annotations

#: Hz: the one rate of speech inside headcast (features, motion, the live session clock,
#: offline decoding); every input is resampled to it
SAMPLE_RATE = 16_000


class AudioError(ValueError):
    """Input that is not usable audio; the message says why in one readable line."""


class AudioTooLong(AudioError):
    """The decoded audio passes the length the caller allows."""


__all__ = ["SAMPLE_RATE", "AudioError", "AudioTooLong"]
