"""Encoders for what headcast sends: clean rendered video and one voice.

aiortc's stock encoders are set up for camera and microphone input. For a rendered
talking head and synthetic or recorded speech two choices cost CPU for nothing, on the
machine that renders as well (measured on the 2-core development machine, 256x256
frames of the default avatar at 500 kbps):

* VP8: libvpx's temporal denoiser (``noise-sensitivity``) removes sensor noise that
  rendered frames do not have; without it, at real-time speed 10 instead of 6,
  encoding takes 0.51 instead of 0.96 ms a frame and PSNR (Y) rises from 44.9 to
  47.8 dB: the denoiser was smearing the frames.
* Opus: the avatar speaks with one voice; coded as mono at 48 kbps (plenty for
  speech; the SDP still says ``opus/48000/2``, as RFC 7587 requires, and decoders play
  mono packets on both channels), it takes about half the CPU of stereo at 96 kbps.

:func:`use_speech_encoders` makes aiortc's RTP senders use these two; other codecs
(H.264) keep aiortc's own.
"""

from __future__ import annotations

from typing import Any

import aiortc.rtcrtpsender
from aiortc.codecs import get_encoder as aiortc_get_encoder
from aiortc.codecs.base import Encoder
from aiortc.codecs.vpx import Vp8Encoder
from av import AudioFrame, AudioResampler, CodecContext, VideoFrame
from av.frame import Frame
from av.video.frame import PictureType

from server.clock import VIDEO_CLOCK_RATE

VP8_SPEED = "-10"  # libvpx real-time speed (cpu-used); negative = real-time mode
VP8_QUANTIZERS = (2, 56)
VP8_REOPEN_CHANGE = 0.1  # reopen the encoder when the target bitrate moves this much
OPUS_RATE = 48_000
OPUS_FRAME = 960  # 20 ms
OPUS_BITRATE = 48_000


class RenderedVp8Encoder(Vp8Encoder):
    """VP8 for rendered frames: no denoiser, faster real-time speed, CBR at the target
    bitrate aiortc's congestion control sets (``target_bitrate``)."""

    def _open(self, width: int, height: int) -> Any:
        rate = self.target_bitrate
        codec = CodecContext.create("libvpx", "w")
        codec.width, codec.height = width, height
        codec.pix_fmt = "yuv420p"
        codec.bit_rate = rate
        codec.gop_size = 1 << 16  # keyframes only when the receiver asks (PLI/FIR)
        codec.qmin, codec.qmax = VP8_QUANTIZERS
        codec.thread_count = 1  # small frames; the sessions are the parallelism
        codec.options = {
            "deadline": "realtime",
            "cpu-used": VP8_SPEED,
            "lag-in-frames": "0",
            "noise-sensitivity": "0",
            "minrate": str(rate),
            "maxrate": str(rate),
            "bufsize": str(rate),  # a one-second rate-control buffer
            "undershoot-pct": "100",
            "overshoot-pct": "15",
            "static-thresh": "1",
            "partitions": "0",
        }
        return codec

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        assert isinstance(frame, VideoFrame)
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        codec = self.codec
        rate = int(codec.bit_rate or 0) if codec is not None else 0
        if (
            codec is None
            or (codec.width, codec.height) != (frame.width, frame.height)
            or abs(self.target_bitrate - rate) > VP8_REOPEN_CHANGE * rate
        ):
            codec = self.codec = self._open(frame.width, frame.height)
        if force_keyframe:
            frame.pict_type = PictureType.I
        data = b"".join(bytes(p) for p in codec.encode(frame))
        payloads = self._packetize(data, self.picture_id)
        self.picture_id = (self.picture_id + 1) % (1 << 15)
        assert frame.time_base is not None and frame.pts is not None
        timestamp = int(frame.pts * frame.time_base * VIDEO_CLOCK_RATE)
        return payloads, timestamp


class SpeechOpusEncoder(Encoder):
    """Opus, mono, for speech. Takes the audio track's 20 ms s16 mono 48 kHz frames as
    they are; anything else goes through a resampler first."""

    def __init__(self) -> None:
        self.codec = CodecContext.create("libopus", "w")
        self.codec.sample_rate = OPUS_RATE
        self.codec.layout = "mono"
        self.codec.format = "s16"
        self.codec.bit_rate = OPUS_BITRATE
        self.codec.options = {"application": "voip"}
        self._sent = 0  # 48 kHz samples in the packets so far: the RTP timestamp
        self._resampler: AudioResampler | None = None

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        assert isinstance(frame, AudioFrame)
        if (frame.format.name, frame.layout.name, frame.sample_rate, frame.samples) == (
            "s16",
            "mono",
            OPUS_RATE,
            OPUS_FRAME,
        ):
            frames = [frame]  # what the avatar's audio track sends
        else:  # any other track in this process (a client's microphone, say)
            if self._resampler is None:
                self._resampler = AudioResampler(
                    format="s16", layout="mono", rate=OPUS_RATE, frame_size=OPUS_FRAME
                )
            frames = self._resampler.resample(frame)
        packets = [bytes(p) for f in frames for p in self.codec.encode(f)]
        timestamp = self._sent
        self._sent += OPUS_FRAME * len(packets)
        return packets, timestamp

    def pack(self, packet: Any) -> tuple[list[bytes], int]:
        raise NotImplementedError("the audio track sends raw frames")


def speech_encoder(codec: Any) -> Encoder:
    """aiortc's ``get_encoder`` with ours for VP8 and Opus."""
    mime = codec.mimeType.lower()
    if mime == "video/vp8":
        return RenderedVp8Encoder()
    if mime == "audio/opus":
        return SpeechOpusEncoder()
    return aiortc_get_encoder(codec)


def use_speech_encoders() -> None:
    """Have aiortc's RTP senders (this process) encode with :func:`speech_encoder`."""
    aiortc.rtcrtpsender.get_encoder = speech_encoder
