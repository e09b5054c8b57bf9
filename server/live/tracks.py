"""aiortc output tracks paced by the session's media clock.

Both tracks compute their slot from the same :class:`~server.live.clock.MediaClock`, sleep
until its wall time and hand aiortc a frame stamped from the sample counter. A video
frame that is not ready repeats the last one (counted); audio that is not there is
silence. Once aiortc has made its VP8 or Opus encoder, the tracks encode in ``recv``
themselves and hand aiortc packets (see :mod:`server.live.encoders`: cheaper than aiortc's
trip to an executor thread per frame). Video goes out as yuv420p, converted once per
frame where it is rendered (:func:`~models.frames.to_i420`).
"""

from __future__ import annotations

import asyncio
import math
import time
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING

import aiortc.rtp
import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from headcast.models.audio.resample import BlockUpsampler
from headcast.models.frames import to_i420
from headcast.server.live.clock import (
    AUDIO_CHUNK,
    OPUS_LOOKAHEAD_SAMPLES,
    SAMPLE_RATE,
    VIDEO_TIME_BASE,
)
from headcast.server.live.encoders import (
    CURRENT_TRACK,
    Encoder,
    RenderedVp8Encoder,
    SpeechOpusEncoder,
)

if TYPE_CHECKING:
    from headcast.server.live.session import Session

INT16_SCALE = 32767.0
OUT_RATE = 48_000  # Opus's own rate: aiortc's encoder then resamples nothing
OUT_CHUNK = AUDIO_CHUNK * OUT_RATE // SAMPLE_RATE  # 960 samples per 20 ms
OUT_TIME_BASE = Fraction(1, OUT_RATE)


@lru_cache(maxsize=1)
def upsampler() -> BlockUpsampler:
    return BlockUpsampler(OUT_RATE // SAMPLE_RATE)


def audio_level_dbov(frame: av.AudioFrame) -> int:
    """RFC 6465 (appendix A) audio level of an s16 frame, in -dBov, -127..0, vectorised.

    aiortc computes this for every audio packet it sends (the ``ssrc-audio-level``
    header extension) with a per-sample Python loop: 0.12 ms for a 20 ms frame at
    48 kHz, on the event loop. :func:`use_fast_audio_level` puts this one in its place;
    it gives the same values (``tests/test_server_units.py``).
    """
    pcm = np.frombuffer(memoryview(frame.planes[0]), np.int16).astype(np.float64)
    power = float(np.dot(pcm, pcm)) / (frame.samples * INT16_SCALE * INT16_SCALE)
    if power <= 0.0:
        return -127
    return round(min(max(10.0 * math.log10(power), -127.0), 0.0))


def use_fast_audio_level() -> None:
    """Have aiortc's RTP senders compute audio levels with :func:`audio_level_dbov`."""
    aiortc.rtp.compute_audio_level_dbov = audio_level_dbov


AIORTC_AUDIO_LEVEL = aiortc.rtp.compute_audio_level_dbov  # the one it replaces


def audio_read_ahead() -> int:
    """Session samples past its slot's end that the audio track reads as it sends a slot:
    what the encoder holds back, libopus's look-ahead and the upsampling filter's context.

    Samples from ``clock.first_unread_sample(now, audio_read_ahead())`` on can still be
    changed before anyone hears them (see ``SessionPipeline``'s early onsets).
    """
    return encoder_hold_chunks() * AUDIO_CHUNK + OPUS_LOOKAHEAD_SAMPLES + upsampler().pad


class AvatarVideoTrack(MediaStreamTrack):
    """Video of one session: uint8 RGB frames at the session fps."""

    kind = "video"

    def __init__(self, session: Session, encode_off_loop: bool = False) -> None:
        super().__init__()
        self.session = session
        self._encode_off_loop = encode_off_loop  # encode on the loop's executor threads
        self._j: int | None = None
        self._last: np.ndarray = session.idle_image
        self._last_yuv = to_i420(self._last)
        self.sent = 0
        self.repeated = 0
        self.skipped = 0
        self.first_frame_s: float | None = None
        self._created = time.monotonic()
        self._encoder: RenderedVp8Encoder | None = None
        self._keyframe = False

    def bind_encoder(self, encoder: Encoder) -> None:
        if isinstance(encoder, RenderedVp8Encoder):
            self._encoder = encoder

    encodes_itself = property(lambda self: self._encoder is not None)

    def request_keyframe(self) -> None:
        """The receiver lost the picture (PLI/FIR): the next frame is a keyframe."""
        self._keyframe = True

    async def recv(self) -> av.VideoFrame | av.Packet:
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
        if frame is not None and frame.yuv is not None:
            self._last_yuv = frame.yuv  # frames from render processes carry I420 only
        elif frame is not None and frame.image is not None:
            self._last = frame.image
            self._last_yuv = to_i420(frame.image)
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
        if self._encoder is None:
            CURRENT_TRACK.set(self)  # for the encoder factory, once aiortc makes one
            return out
        keyframe, self._keyframe = self._keyframe, False
        if self._encode_off_loop:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, self._encoder.encode_packet, out, keyframe)
        return self._encoder.encode_packet(out, keyframe)


@lru_cache(maxsize=1)
def encoder_hold_chunks() -> int:
    """How many 20 ms frames aiortc's Opus encoder takes in before a packet comes out.

    aiortc passes audio through a resampler to 48 kHz stereo that emits whole 20 ms
    frames. Fed another rate, its filter delay holds each frame until the next arrives
    (the packet with chunk ``k`` would leave on the ``recv`` of chunk ``k + 1``); fed
    48 kHz, as this track does, it only converts the layout and holds nothing. Measured
    once by feeding the encoder silence, so the track compensates whatever it finds.
    """
    enc = SpeechOpusEncoder()
    silence = np.zeros((1, OUT_CHUNK), np.int16)
    for k in range(8):
        frame = av.AudioFrame.from_ndarray(silence, format="s16", layout="mono")
        frame.sample_rate = OUT_RATE
        frame.pts = k * OUT_CHUNK
        frame.time_base = OUT_TIME_BASE
        if enc.encode(frame)[0]:
            return k
    return 0


class AvatarAudioTrack(MediaStreamTrack):
    """The session's speech, delayed onto the output clock: 48 kHz mono s16, 20 ms frames.

    The session clock runs at 16 kHz; each slot's samples are upsampled here, from a
    block read with the filter's context on both sides (:class:`BlockUpsampler`), so
    no filter delay is added and a slot can be read at any time, in any order.
    """

    kind = "audio"

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self._k: int | None = None
        self._ahead = encoder_hold_chunks() * AUDIO_CHUNK + OPUS_LOOKAHEAD_SAMPLES
        self._upsample = upsampler()
        self._encoder: SpeechOpusEncoder | None = None

    def bind_encoder(self, encoder: Encoder) -> None:
        if isinstance(encoder, SpeechOpusEncoder):
            self._encoder = encoder

    encodes_itself = property(lambda self: self._encoder is not None)

    async def recv(self) -> av.AudioFrame | av.Packet:
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
        # early by what it holds back and by libopus's look-ahead (see server.live.clock).
        self.session.on_audio_sent(self._k * AUDIO_CHUNK + OPUS_LOOKAHEAD_SAMPLES, time.monotonic())
        pad = self._upsample.pad
        first = self._k * AUDIO_CHUNK + self._ahead
        pcm = self._upsample(self.session.pipeline.read_audio(first - pad, AUDIO_CHUNK + 2 * pad))
        s16 = np.clip(np.rint(pcm * INT16_SCALE), -32768, 32767).astype(np.int16)
        out = av.AudioFrame.from_ndarray(s16.reshape(1, -1), format="s16", layout="mono")
        out.sample_rate = OUT_RATE
        out.pts = self._k * OUT_CHUNK
        out.time_base = OUT_TIME_BASE
        if self._encoder is None:
            CURRENT_TRACK.set(self)  # for the encoder factory, once aiortc makes one
            return out
        return self._encoder.encode_packet(out)
