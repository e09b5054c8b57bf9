"""Mirror mode: the viewer's own microphone, sent over WebRTC, drives the avatar's mouth."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from headcast.models.audio.features import StreamingResampler

if TYPE_CHECKING:
    from headcast.server.live.session import Session


async def read_microphone(session: Session, track: MediaStreamTrack) -> None:
    """Push ``track``'s audio into ``session`` (not echoed back) until either ends."""
    resampler: StreamingResampler | None = None
    while not session.closed:
        try:
            frame: Any = await track.recv()
        except MediaStreamError:
            return
        pcm = frame.to_ndarray()  # packed: int16 (1, samples * channels)
        channels = len(frame.layout.channels)
        pcm = pcm.reshape(-1, channels) if channels > 1 else pcm.reshape(-1)
        if resampler is None or resampler.sample_rate != frame.sample_rate:
            resampler = StreamingResampler(frame.sample_rate)
        session.push(resampler.push(pcm))
