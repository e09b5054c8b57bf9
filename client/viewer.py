"""Watching a session over WHEP with aiortc, recording what arrives and when."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from headcast.client.http_client import HeadcastClient, HeadcastError


@dataclass
class Received:
    """Frames a :class:`Viewer` got: video uint8 (H, W, 3) RGB and audio float32 mono,
    each with the arrival time (monotonic s) of its first RTP packet."""

    video: list[tuple[float, np.ndarray]] = field(default_factory=list)
    audio: list[tuple[float, np.ndarray, int]] = field(default_factory=list)  # (t, pcm, rate)


class Viewer:
    """Watches a session over WHEP with aiortc and records what arrives.

    Arrival times are taken when the first RTP packet of a frame comes in (not after
    the jitter buffer), so they measure what the server sent and when.

    ``keep_video=False`` keeps no pixels; ``decode=False`` (load generators in
    benchmarks) records each video frame's arrival from its RTP packets and hands
    nothing to aiortc's jitter buffers and decoders, so a watcher costs almost no CPU.
    ``on_frame(kind, frame)`` (a coroutine function) gets each decoded aiortc frame
    ("video" or "audio") instead of the frames being recorded: a stream, not a log.
    """

    def __init__(
        self,
        client: HeadcastClient,
        keep_video: bool = True,
        decode: bool = True,
        on_frame: Callable[[str, Any], Awaitable[None]] | None = None,
    ) -> None:
        self.client = client
        self.keep_video = keep_video
        self.decode = decode
        self.on_frame = on_frame
        self.received = Received()
        self.location: str | None = None
        self.pc: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._arrivals: dict[str, dict[int, float]] = {"audio": {}, "video": {}}
        self._origin: dict[str, int] = {}

    async def watch(
        self,
        path: str,
        *,
        video_codec: str | None = None,
        microphone: Any = None,
    ) -> Viewer:
        """POST an offer to the WHEP URL ``path``; start receiving.

        ``video_codec``: "VP8" or "H264" to prefer one; ``microphone``: an aiortc audio
        track to send (mirror mode).
        """
        from aiortc import RTCPeerConnection, RTCSessionDescription
        from aiortc.rtcrtpsender import RTCRtpSender

        pc = RTCPeerConnection()
        self.pc = pc
        video = pc.addTransceiver("video", direction="recvonly")
        if video_codec:
            codecs = [
                c
                for c in RTCRtpSender.getCapabilities("video").codecs
                if c.mimeType.lower() in (f"video/{video_codec.lower()}", "video/rtx")
            ]
            video.setCodecPreferences(codecs)
        if microphone is not None:
            pc.addTrack(microphone)
        else:
            pc.addTransceiver("audio", direction="recvonly")

        @pc.on("track")
        def on_track(track: Any) -> None:
            self._tasks.append(asyncio.get_running_loop().create_task(self._consume(track)))

        await pc.setLocalDescription(await pc.createOffer())
        resp = await self.client.request(
            "POST", path, pc.localDescription.sdp.encode(), "application/sdp"
        )
        if resp.status != 201:
            await pc.close()
            raise HeadcastError.from_response(resp)
        self.location = resp.headers.get("location") or resp.headers.get("Location")
        for t in pc.getTransceivers():
            self._hook(t.receiver, t.kind)
        await pc.setRemoteDescription(RTCSessionDescription(resp.body.decode(), "answer"))
        return self

    def _hook(self, receiver: Any, kind: str) -> None:
        original = receiver._handle_rtp_packet
        arrivals = self._arrivals[kind]
        origin = self._origin

        async def handle(packet: Any, arrival_time_ms: int) -> None:
            origin.setdefault(kind, packet.timestamp)
            if packet.timestamp not in arrivals:
                arrivals[packet.timestamp] = now = time.monotonic()
                if kind == "video" and not self.decode:
                    self.received.video.append((now, np.empty((0, 0, 3), np.uint8)))
            if len(arrivals) > 4096:
                for ts in list(arrivals)[:1024]:
                    del arrivals[ts]
            if self.decode:
                await original(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = handle

    def _arrival(self, kind: str, pts: int | None) -> float:
        if pts is None or kind not in self._origin:
            return time.monotonic()
        ts = (self._origin[kind] + pts) & 0xFFFFFFFF
        return self._arrivals[kind].get(ts, time.monotonic())

    async def _consume(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if self.on_frame is not None:
                await self.on_frame(track.kind, frame)
                continue
            t = self._arrival(track.kind, frame.pts)
            if track.kind == "video":
                if self.keep_video:
                    self.received.video.append((t, frame.to_ndarray(format="rgb24")))
                else:
                    self.received.video.append((t, np.empty((0, 0, 3), np.uint8)))
            else:
                pcm = frame.to_ndarray().astype(np.float32) / 32768.0
                channels = len(frame.layout.channels)
                mono = pcm.reshape(-1, channels).mean(axis=1)
                self.received.audio.append((t, mono, frame.sample_rate))

    async def close(self) -> None:
        if self.location:
            with contextlib.suppress(Exception):
                await self.client.request("DELETE", self.location)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.pc is not None:
            await self.pc.close()
