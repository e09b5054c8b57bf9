"""A small Python client for headcast: sessions over HTTP, speech over the WebSocket,
and (optionally) watching the avatar over WHEP with aiortc.

For voice-agent back ends::

    client = HeadcastClient("http://127.0.0.1:8080")
    session = await client.create_session(avatar="default", emotion="happy")
    async with await client.connect(session["id"], sample_rate=24_000) as audio:
        await audio.stream(tts_chunks())          # async iterator of int16 PCM bytes
        await audio.interrupt()                   # the user barged in
        event = await audio.next_event("interrupted")
    await client.close_session(session["id"])

Only the standard library, ``websockets`` and (for :class:`Viewer`) ``aiortc``/``numpy``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import websockets

HTTP_TIMEOUT_S = 30.0


class HeadcastError(RuntimeError):
    """An HTTP error from the server, with its status and reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HeadcastClient:
    """HTTP side of the API (blocking ``urllib`` calls run on a thread)."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token

    def _request_sync(
        self, method: str, path: str, body: bytes | None, content_type: str | None
    ) -> Response:
        req = urllib.request.Request(self.base_url + path, data=body, method=method)
        if content_type:
            req.add_header("Content-Type", content_type)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
                return Response(resp.status, dict(resp.headers.items()), resp.read())
        except urllib.error.HTTPError as exc:
            return Response(exc.code, dict(exc.headers.items()), exc.read())

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> Response:
        """Any request; returns the response whatever its status."""
        return await asyncio.to_thread(self._request_sync, method, path, body, content_type)

    async def _json(self, method: str, path: str, payload: Any = None) -> Any:
        body = None if payload is None else json.dumps(payload).encode()
        resp = await self.request(method, path, body, "application/json" if body else None)
        if resp.status >= 400:
            try:
                reason = resp.json().get("detail", resp.body.decode())
            except ValueError:
                reason = resp.body.decode(errors="replace")
            raise HeadcastError(resp.status, str(reason))
        return resp.json() if resp.body else None

    async def create_session(self, **params: Any) -> dict[str, Any]:
        """``POST /v1/sessions``: avatar, emotion, fps, size, input, seed."""
        result: dict[str, Any] = await self._json("POST", "/v1/sessions", params)
        return result

    async def session(self, sid: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", f"/v1/sessions/{sid}")
        return result

    async def close_session(self, sid: str) -> None:
        await self._json("DELETE", f"/v1/sessions/{sid}")

    async def control(self, sid: str, message: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("POST", f"/v1/sessions/{sid}/control", message)
        return result

    async def upload_audio(self, sid: str, data: bytes, content_type: str = "audio/wav") -> Any:
        resp = await self.request("POST", f"/v1/sessions/{sid}/audio", data, content_type)
        if resp.status >= 400:
            raise HeadcastError(resp.status, resp.body.decode(errors="replace"))
        return resp.json()

    async def connect(
        self,
        sid: str,
        *,
        sample_rate: int = 16_000,
        fmt: str = "s16le",
        channels: int = 1,
        coefficients: bool = False,
    ) -> AudioSocket:
        """Open the session's WebSocket and send the start message; waits for ``ready``."""
        url = "ws" + self.base_url[4:] + f"/v1/sessions/{sid}/ws"
        if self.token:  # the server's auth guard reads ?token= on WebSockets
            url += "?token=" + urllib.parse.quote(self.token, safe="")
        ws = await websockets.connect(url, max_size=None)
        sock = AudioSocket(ws, sample_rate, fmt, channels)
        await ws.send(
            json.dumps(
                {
                    "type": "start",
                    "format": fmt,
                    "sample_rate": sample_rate,
                    "channels": channels,
                    "coefficients": coefficients,
                }
            )
        )
        sock.start()
        sock.ready = await sock.next_event("ready")
        return sock


class AudioSocket:
    """One WebSocket: PCM and control out, events in (kept with their arrival time)."""

    def __init__(self, ws: Any, sample_rate: int, fmt: str, channels: int) -> None:
        self.ws = ws
        self.sample_rate = sample_rate
        self.fmt = fmt
        self.channels = channels
        self.events: list[tuple[float, dict[str, Any]]] = []
        self._new = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self.ready: dict[str, Any] = {}
        self.closed_reason: str | None = None

    def start(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if isinstance(msg, str):
                    self.events.append((time.monotonic(), json.loads(msg)))
                    self._new.set()
        except websockets.ConnectionClosed as exc:
            self.closed_reason = str(exc)
        finally:
            self.closed_reason = self.closed_reason or "closed"
            self._new.set()

    async def __aenter__(self) -> AudioSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def encode(self, pcm: np.ndarray | bytes) -> bytes:
        """float (-1..1) or int16 samples -> bytes in the declared format."""
        if isinstance(pcm, bytes | bytearray):
            return bytes(pcm)
        x = np.asarray(pcm)
        if self.fmt == "f32le":
            if x.dtype.kind in "iu":
                x = x.astype(np.float32) / 32768.0
            return x.astype("<f4").tobytes()
        if x.dtype.kind == "f":
            x = np.clip(np.rint(x * 32767.0), -32768, 32767)
        return x.astype("<i2").tobytes()

    async def send_pcm(self, pcm: np.ndarray | bytes) -> float:
        """Send one chunk; returns the wall time (monotonic) it was handed to the socket."""
        data = self.encode(pcm)
        await self.ws.send(data)
        return time.monotonic()

    async def stream(
        self,
        chunks: AsyncIterable[np.ndarray | bytes] | Iterable[np.ndarray | bytes],
        *,
        realtime: bool = False,
        end_of_utterance: bool = True,
    ) -> None:
        """Send every chunk (paced at real time if asked), then ``end_of_utterance``."""
        t0 = time.monotonic()
        sent_s = 0.0
        if isinstance(chunks, AsyncIterable):
            async for chunk in chunks:
                sent_s += await self._paced(chunk, realtime, t0, sent_s)
        else:
            for chunk in chunks:
                sent_s += await self._paced(chunk, realtime, t0, sent_s)
        if end_of_utterance:
            await self.send_control({"type": "end_of_utterance"})

    async def _paced(
        self, chunk: np.ndarray | bytes, realtime: bool, t0: float, sent: float
    ) -> float:
        data = self.encode(chunk)
        await self.ws.send(data)
        seconds = len(data) / (2 if self.fmt == "s16le" else 4) / self.channels / self.sample_rate
        if realtime:
            await asyncio.sleep(max(0.0, t0 + sent + seconds - time.monotonic()))
        return seconds

    async def send_control(self, message: dict[str, Any]) -> float:
        await self.ws.send(json.dumps(message))
        return time.monotonic()

    async def interrupt(self) -> float:
        return await self.send_control({"type": "interrupt"})

    async def emotion(self, name: str, transition_s: float = 0.4) -> float:
        return await self.send_control(
            {"type": "emotion", "name": name, "transition_s": transition_s}
        )

    async def pose(self, **values: float) -> float:
        return await self.send_control({"type": "pose", "values": values})

    async def next_event(
        self, kind: str | None = None, within_s: float = 10.0, after: int = 0
    ) -> dict[str, Any]:
        """The first event (of ``kind``) at index >= ``after``; TimeoutError otherwise."""
        deadline = time.monotonic() + within_s
        seen = after
        while True:
            for _, event in self.events[seen:]:
                if kind is None or event.get("type") == kind:
                    return event
            seen = max(seen, len(self.events))
            if self.closed_reason is not None:
                raise ConnectionError(f"socket closed ({self.closed_reason}) before {kind!r}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {kind!r} event within {within_s} s")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), left)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for _, e in self.events if e.get("type") == kind]

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


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
    """

    def __init__(self, client: HeadcastClient, keep_video: bool = True) -> None:
        self.client = client
        self.keep_video = keep_video
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
            raise HeadcastError(resp.status, resp.body.decode(errors="replace"))
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
            arrivals.setdefault(packet.timestamp, time.monotonic())
            if len(arrivals) > 4096:
                for ts in list(arrivals)[:1024]:
                    del arrivals[ts]
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
