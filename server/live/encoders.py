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

aiortc encodes every frame a track hands it on an executor thread. Passing a 20 ms audio
frame or a small video frame to a thread and its result back costs more CPU than the
encode (measured here: ~0.2 ms of hand-off per call; a 256x256 VP8 frame of the avatar
encodes in ~0.25 ms, an Opus packet in ~0.13 ms), and a server sends 75 of them per
session and second. So a track that asks for it (:class:`EncodingTrack`) is given the
encoder its sender made, encodes in ``recv`` itself and returns the packet, which aiortc
only packetises. The encoder stays the sender's: the bitrate aiortc's congestion control
sets reaches it; a keyframe request (PLI, FIR) reaches the track through
:func:`forward_keyframe_requests`. On more than a few cores the video track hands the
encode to the loop's executor instead (``video_encode``): the event loop is one core,
and libvpx encodes outside the interpreter lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from fractions import Fraction
from typing import Any, Protocol

import aiortc.rtcrtpsender
import numpy as np
from aiortc.codecs import get_encoder as aiortc_get_encoder
from aiortc.codecs.base import Encoder
from aiortc.codecs.vpx import Vp8Encoder
from av import AudioFrame, AudioResampler, CodecContext, Packet, VideoFrame
from av.frame import Frame
from av.video.frame import PictureType

from headcast.models.frames import to_i420
from headcast.server.live.clock import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE

VP8_SPEED = "-10"  # libvpx real-time speed (cpu-used); negative = real-time mode
VP8_QUANTIZERS = (2, 56)
VP8_REOPEN_CHANGE = 0.1  # reopen the encoder when the target bitrate moves this much
OPUS_RATE = 48_000
OPUS_FRAME = 960  # 20 ms
OPUS_BITRATE = 48_000
OPUS_PACKET_TIME_BASE = Fraction(1, OPUS_RATE)


class EncodingTrack(Protocol):
    """A track that encodes its own frames once it has its sender's encoder."""

    def bind_encoder(self, encoder: Encoder) -> None: ...


#: The track whose ``recv`` ran last in this task. aiortc's sender task awaits
#: ``track.recv()`` and then, in the same task, creates its encoder, so the encoder
#: factory finds the track here.
CURRENT_TRACK: ContextVar[EncodingTrack | None] = ContextVar("headcast_track", default=None)


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

    def _encode_bytes(self, frame: VideoFrame, force_keyframe: bool) -> bytes:
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
        return b"".join(bytes(p) for p in codec.encode(frame))

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        assert isinstance(frame, VideoFrame)
        return self.pack(self.encode_packet(frame, force_keyframe))

    def encode_packet(self, frame: VideoFrame, force_keyframe: bool = False) -> Packet:
        """``frame`` as one VP8 packet for :meth:`pack` (called by the track, in place
        of :meth:`encode` on aiortc's executor)."""
        packet = Packet(self._encode_bytes(frame, force_keyframe))
        assert frame.time_base is not None and frame.pts is not None
        packet.pts = int(frame.pts * frame.time_base * VIDEO_CLOCK_RATE)
        packet.time_base = VIDEO_TIME_BASE
        return packet

    def pack(self, packet: Packet) -> tuple[list[bytes], int]:
        if not packet.size:  # nothing came out (a frame the encoder dropped)
            assert packet.pts is not None
            return [], int(packet.pts)
        return super().pack(packet)


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

    def _encode_bytes(self, frame: AudioFrame) -> list[bytes]:
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
        return [bytes(p) for f in frames for p in self.codec.encode(f)]

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        assert isinstance(frame, AudioFrame)
        packets = self._encode_bytes(frame)
        timestamp = self._sent
        self._sent += OPUS_FRAME * len(packets)
        return packets, timestamp

    def encode_packet(self, frame: AudioFrame) -> Packet:
        """One 20 ms frame as one packet for :meth:`pack` (an empty packet while the
        encoder holds the audio back, which :meth:`pack` skips)."""
        data = self._encode_bytes(frame)
        if len(data) > 1:  # 20 ms in gives one packet out: never more
            raise RuntimeError(f"Opus returned {len(data)} packets for one frame")
        packet = Packet(data[0] if data else b"")
        packet.pts = self._sent
        packet.time_base = OPUS_PACKET_TIME_BASE
        self._sent += OPUS_FRAME * len(data)
        return packet

    def pack(self, packet: Packet) -> tuple[list[bytes], int]:
        data = bytes(packet)
        assert packet.pts is not None
        return ([data] if data else []), int(packet.pts)


def speech_encoder(codec: Any) -> Encoder:
    """aiortc's ``get_encoder`` with ours for VP8 and Opus; the track being sent, when it
    encodes for itself (:data:`CURRENT_TRACK`), gets the encoder."""
    mime = codec.mimeType.lower()
    encoder: Encoder
    if mime == "video/vp8":
        encoder = RenderedVp8Encoder()
    elif mime == "audio/opus":
        encoder = SpeechOpusEncoder()
    else:
        return aiortc_get_encoder(codec)
    track = CURRENT_TRACK.get()
    if track is not None:
        track.bind_encoder(encoder)
    return encoder


def forward_keyframe_requests(sender: Any, request: Callable[[], None]) -> None:
    """Call ``request`` when ``sender``'s receiver asks for a keyframe (PLI or FIR).

    aiortc turns those into a flag it applies only to frames it encodes itself.
    """
    sender._send_keyframe = request


def use_speech_encoders() -> None:
    """Have aiortc's RTP senders (this process) encode with :func:`speech_encoder`."""
    aiortc.rtcrtpsender.get_encoder = speech_encoder


def measure_encode_cost(size: int, frames: int = 12) -> float:
    """CPU seconds per frame for the VP8 encode of a ``size`` x ``size`` frame.

    The test picture is smooth with a moving patch, like a talking head; thread CPU
    time, so other load on the machine inflates it less.
    """
    enc = RenderedVp8Encoder()
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = np.stack([200 * xx, 180 * yy, 120 + 60 * xx * yy], axis=-1).astype(np.uint8)
    times = []
    for i in range(frames):
        img = base.copy()
        c = size // 4 + i * size // 64
        img[c : c + size // 8, size // 3 : size // 3 + size // 4] = (90, 40, 40)
        yuv = to_i420(img)  # as the video track sends it
        if yuv is None:
            frame = VideoFrame.from_ndarray(img, format="rgb24")
        else:
            frame = VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = i * 3600  # 25 fps
        frame.time_base = VIDEO_TIME_BASE
        t0 = time.thread_time()
        enc.encode(frame)
        if i:  # the first frame is a keyframe plus codec set-up
            times.append(time.thread_time() - t0)
    # the lower half: on a shared host a few frames catch a slow moment
    return float(np.mean(sorted(times)[: max(1, len(times) // 2)]))
