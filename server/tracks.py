"""aiortc output tracks paced by the session's media clock.

Both tracks compute their slot from the same :class:`~server.clock.MediaClock`, sleep
until its wall time and hand aiortc a frame stamped from the sample counter. A video
frame that is not ready repeats the last one (counted); audio that is not there is
silence. aiortc encodes on its executor threads, so ``recv`` does only copies. Video goes
out as yuv420p, converted once per frame on the worker (:func:`~server.pipeline.to_i420`),
so the encoder does not convert the same RGB picture again on every send.
"""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from server.clock import (
    AUDIO_CHUNK,
    AUDIO_TIME_BASE,
    OPUS_LOOKAHEAD_SAMPLES,
    SAMPLE_RATE,
    VIDEO_TIME_BASE,
)
from server.pipeline import to_i420

if TYPE_CHECKING:
    from server.session import Session

INT16_SCALE = 32767.0


class AvatarVideoTrack(MediaStreamTrack):
    """Video of one session: uint8 RGB frames at the session fps."""

    kind = "video"

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self._j: int | None = None
        self._last: np.ndarray = session.idle_image
        self._last_yuv = to_i420(self._last)
        self.sent = 0
        self.repeated = 0
        self.skipped = 0
        self.first_frame_s: float | None = None
        self._created = time.monotonic()

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live" or self.session.closed:
            raise MediaStreamError
        clock = self.session.clock
        now = time.monotonic()
        current = clock.output_frame(now)
        if self._j is None:
            self._j = max(current + 1, 0)
        else:
            self._j += 1
            if self._j < current:  # the loop stalled: skip to now rather than lag forever
                self.skipped += current - self._j
                self._j = current
        wait = clock.video_time(self._j) - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        frame = self.session.pipeline.frame(self._j)
        if frame is not None and frame.image is not None:
            self._last = frame.image
            self._last_yuv = frame.yuv if frame.yuv is not None else to_i420(frame.image)
        else:
            self.repeated += 1
        self.session.on_video_sent(self._j, time.monotonic())
        if self._last_yuv is not None:
            out = av.VideoFrame.from_ndarray(self._last_yuv, format="yuv420p")
        else:
            out = av.VideoFrame.from_ndarray(self._last, format="rgb24")
        out.pts = clock.video_pts(self._j)
        out.time_base = VIDEO_TIME_BASE
        if self.first_frame_s is None:
            self.first_frame_s = time.monotonic() - self._created
            self.session.on_first_frame(self.first_frame_s)
        self.sent += 1
        return out


@lru_cache(maxsize=1)
def encoder_hold_chunks() -> int:
    """How many 20 ms frames aiortc's Opus encoder takes in before a packet comes out.

    It resamples our 16 kHz to 48 kHz through a resampler that emits whole 20 ms frames,
    and the resampler's filter delay holds each frame until the next one arrives: the
    packet with chunk ``k`` leaves on the ``recv`` of chunk ``k + 1``, 20 ms late (its RTP
    timestamp is right, its send time and hence the RTCP sender-report mapping are not).
    Measured once by feeding the encoder silence.
    """
    from aiortc.codecs.opus import OpusEncoder

    enc = OpusEncoder()
    silence = np.zeros((1, AUDIO_CHUNK), np.int16)
    for k in range(8):
        frame = av.AudioFrame.from_ndarray(silence, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = k * AUDIO_CHUNK
        frame.time_base = Fraction(1, SAMPLE_RATE)
        if enc.encode(frame)[0]:
            return k
    return 0


class AvatarAudioTrack(MediaStreamTrack):
    """The session's speech, delayed onto the output clock: 16 kHz mono s16, 20 ms frames."""

    kind = "audio"

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self._k: int | None = None
        self._ahead = encoder_hold_chunks() * AUDIO_CHUNK + OPUS_LOOKAHEAD_SAMPLES

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live" or self.session.closed:
            raise MediaStreamError
        clock = self.session.clock
        now = time.monotonic()
        current = int((now - clock.start - clock.delay_s) * SAMPLE_RATE) // AUDIO_CHUNK
        if self._k is None or self._k + 1 < current:
            self._k = max(current + 1, 0)
        else:
            self._k += 1
        wait = clock.audio_time(self._k) - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        # Slot k plays session samples from k * AUDIO_CHUNK; the encoder is handed audio
        # early by what it holds back and by libopus's look-ahead (see server.clock).
        self.session.on_audio_sent(self._k * AUDIO_CHUNK + OPUS_LOOKAHEAD_SAMPLES, time.monotonic())
        pcm = self.session.pipeline.read_audio(self._k * AUDIO_CHUNK + self._ahead, AUDIO_CHUNK)
        s16 = np.clip(np.rint(pcm * INT16_SCALE), -32768, 32767).astype(np.int16)
        out = av.AudioFrame.from_ndarray(s16.reshape(1, -1), format="s16", layout="mono")
        out.sample_rate = SAMPLE_RATE
        out.pts = self._k * AUDIO_CHUNK
        out.time_base = AUDIO_TIME_BASE
        return out
