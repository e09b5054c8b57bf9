"""The encoders the avatar's tracks use themselves, and how aiortc's senders reach them."""

from __future__ import annotations

import asyncio
import contextvars
from fractions import Fraction
from types import SimpleNamespace
from typing import Any

import av
import numpy as np
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack
from aiortc.rtp import RTCP_PSFB_FIR, RTCP_PSFB_PLI, RtcpPsfbPacket

from headcast.models.channels import CHANNEL_INDEX, zeros
from headcast.models.render import create_renderer
from headcast.server.live.encoders import (
    CURRENT_TRACK,
    OPUS_FRAME,
    OPUS_RATE,
    RenderedVp8Encoder,
    SpeechOpusEncoder,
    forward_keyframe_requests,
    speech_encoder,
)

SIZE = 256


def avatar_frames(n: int) -> list[av.VideoFrame]:
    render = create_renderer(None, backend="warp", size=SIZE).render
    frames = []
    for i in range(n):
        c = zeros()
        c[CHANNEL_INDEX["jawOpen"]] = 0.5 + 0.5 * np.sin(i / 3)
        frame = av.VideoFrame.from_ndarray(render(c), format="rgb24").reformat(format="yuv420p")
        frame.pts = i * 3600
        frame.time_base = Fraction(1, 90_000)
        frames.append(frame)
    return frames


def is_vp8_keyframe(data: bytes) -> bool:
    return (data[0] & 1) == 0  # frame tag: bit 0 is 0 for a key frame (RFC 6386, 9.1)


def test_vp8_packets_decode_and_keyframes_come_on_request() -> None:
    frames = avatar_frames(12)
    enc = RenderedVp8Encoder()
    dec = av.CodecContext.create("libvpx", "r")
    keyframes = []
    for i, frame in enumerate(frames):
        packet = enc.encode_packet(frame, force_keyframe=i == 8)
        assert packet.pts == i * 3600 and packet.time_base == Fraction(1, 90_000)
        data = bytes(packet)
        keyframes.append(is_vp8_keyframe(data))
        payloads, timestamp = enc.pack(packet)
        assert timestamp == i * 3600 and payloads and sum(map(len, payloads)) > len(data)
        (decoded,) = dec.decode(av.Packet(data))
        y_in = frame.to_ndarray()[:SIZE]
        y_out = decoded.to_ndarray()[:SIZE]
        mse = np.mean((y_in.astype(float) - y_out.astype(float)) ** 2)
        assert 10 * np.log10(255**2 / max(mse, 1e-9)) > 35.0  # PSNR (Y), dB
    assert keyframes == [i in (0, 8) for i in range(12)]
    # the same frame through aiortc's path (encode on its executor) is the same picture
    other = RenderedVp8Encoder()
    payloads, timestamp = other.encode(frames[0])
    assert timestamp == 0 and payloads


def test_opus_packets_carry_the_sample_count() -> None:
    enc = SpeechOpusEncoder()
    t = np.arange(OPUS_FRAME) / OPUS_RATE
    stamps = []
    for k in range(5):
        pcm = (np.sin(2 * np.pi * 220 * (t + k * OPUS_FRAME / OPUS_RATE)) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm[None], format="s16", layout="mono")
        frame.sample_rate = OPUS_RATE
        frame.pts = k * OPUS_FRAME
        frame.time_base = Fraction(1, OPUS_RATE)
        payloads, timestamp = enc.pack(enc.encode_packet(frame))
        assert len(payloads) == 1 and len(payloads[0]) > 10
        stamps.append(timestamp)
    assert stamps == [k * OPUS_FRAME for k in range(5)]
    empty = av.Packet(b"")
    empty.pts = 0
    assert enc.pack(empty) == ([], 0)  # nothing out: aiortc sends nothing


class FakeTrack:
    def __init__(self) -> None:
        self.bound: list[Any] = []

    def bind_encoder(self, encoder: Any) -> None:
        self.bound.append(encoder)


def test_the_encoder_factory_hands_vp8_and_opus_to_the_track_being_sent() -> None:
    def in_sender_task(mime: str) -> tuple[FakeTrack, Any]:
        track = FakeTrack()
        CURRENT_TRACK.set(track)  # what the track's recv does in aiortc's sender task
        return track, speech_encoder(SimpleNamespace(mimeType=mime, clockRate=90_000))

    for mime, kind in (("video/VP8", RenderedVp8Encoder), ("audio/opus", SpeechOpusEncoder)):
        track, encoder = contextvars.Context().run(in_sender_task, mime)
        assert isinstance(encoder, kind) and track.bound == [encoder]
    track, encoder = contextvars.Context().run(in_sender_task, "video/H264")
    assert track.bound == [] and not isinstance(encoder, RenderedVp8Encoder)
    # outside a sender task nobody is bound
    assert isinstance(speech_encoder(SimpleNamespace(mimeType="audio/opus")), SpeechOpusEncoder)


def test_picture_loss_and_fir_reach_the_track() -> None:
    async def main() -> list[str]:
        pc = RTCPeerConnection()
        sender = pc.addTrack(AudioStreamTrack())  # any track: only RTCP handling is used
        requests: list[str] = []
        forward_keyframe_requests(sender, lambda: requests.append("keyframe"))
        for fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            rtcp = RtcpPsfbPacket(fmt=fmt, ssrc=1234, media_ssrc=sender._ssrc)
            await sender._handle_rtcp_packet(rtcp)
        await pc.close()
        return requests

    assert asyncio.run(main()) == ["keyframe", "keyframe"]


def test_video_tracks_can_encode_on_the_executor_threads() -> None:
    """``video_encode: threads`` (the default above four cores): the track hands each
    frame to the loop's executor, so the encodes of many sessions are not all on the
    event loop's one core, and the stream is the same."""
    import threading
    from unittest.mock import patch

    from headcast.client.headcast_client import HeadcastClient, Viewer
    from headcast.server.settings import ServerSettings
    from tests.server_harness import ServerThread, free_port, require_motion_model, run

    require_motion_model()
    settings = ServerSettings(
        host="127.0.0.1", port=free_port(), default_size=SIZE, allowed_sizes=(SIZE,),
        render_processes=1, video_encode="threads",
    )  # fmt: skip
    threads: set[str] = set()
    encode = RenderedVp8Encoder.encode_packet

    def spy(self: RenderedVp8Encoder, frame: av.VideoFrame, force_keyframe: bool = False) -> Any:
        threads.add(threading.current_thread().name)
        return encode(self, frame, force_keyframe)

    with patch.object(RenderedVp8Encoder, "encode_packet", spy), ServerThread(settings) as srv:
        assert srv.state.encode_off_loop

        async def main() -> tuple[Viewer, bool]:
            client = HeadcastClient(srv.url)
            s = await client.create_session()
            viewer = await Viewer(client).watch(s["whep"])
            await asyncio.sleep(3.5)
            tracks = [t for ts in srv.state.sessions[s["id"]].tracks.values() for t in ts]
            video_self = any(t.kind == "video" and t.encodes_itself for t in tracks)
            await viewer.close()
            await client.close_session(s["id"])
            return viewer, video_self

        viewer, video_self = run(main(), timeout=40)
        loop_thread = srv.thread.name
    assert video_self
    assert threads and loop_thread not in threads, (threads, loop_thread)
    t_v = np.array([t for t, _ in viewer.received.video])
    steady = t_v[t_v > t_v[0] + 0.5]
    # The frames keep their 25 fps pace (the median interval between arrivals) and few
    # are missing: a stall of a loaded machine in this ~3 s window costs frames (one of
    # 300 ms in 2 s once made a mean of 21 fps), a stream that breaks far more.
    intervals = np.diff(steady)
    assert 0.036 <= float(np.median(intervals)) <= 0.044, intervals
    assert len(intervals) / (steady[-1] - steady[0]) >= 20.0, intervals
