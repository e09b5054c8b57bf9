"""``HeadcastVideoService``: a headcast avatar in a pipecat pipeline, after the TTS.

::

    pipeline = Pipeline([transport.input(), stt, context_aggregator.user(), llm, tts,
                         HeadcastVideoService(url="http://avatar-host:8080", token=...),
                         transport.output(), context_aggregator.assistant()])

What it does with the frames that reach it:

* ``TTSAudioRawFrame`` — swallowed: sent to the session's WebSocket as PCM (as fast as it
  comes, the server plays it at its own pace). ``TTSStoppedFrame`` ends the utterance.
* ``InterruptionFrame`` — the session is interrupted at once (the mouth closes within a
  frame or two), and the frame goes on downstream.
* Out come ``OutputImageRawFrame(format="RGB")`` at the session's frame rate from the
  moment the pipeline starts (the idle avatar; no TTS audio needed), and the session's
  own audio as ``TTSAudioRawFrame`` — the sound that goes with those frames, pushed only
  while the avatar speaks (a continuous silent stream would keep pipecat's "bot
  speaking" state on).

Media come back over WebRTC (WHEP, with aiortc) and are pushed as they arrive, so frames
and sound leave in the step the server sent them in. ``url=None`` runs the server in
this process (:class:`~headcast.client.local_server.LocalServer`; needs the server extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import numpy as np
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    InterruptionFrame,
    OutputImageRawFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import (
    FrameDirection,
    FrameProcessor,
    FrameProcessorSetup,
)

from headcast.client.audio_socket import AudioSocket
from headcast.client.http_client import HeadcastClient, HeadcastError
from headcast.client.viewer import Viewer

SPEECH_TAIL_S = 0.25  # sound still pushed after speech_ended: what is in flight
EVENT_WAIT_S = 3600.0


class HeadcastVideoService(FrameProcessor):
    """The avatar of one headcast session, driven by the pipeline's TTS audio.

    ``url``: a headcast server (None: one in this process). ``token``: a session token or
    the server's API key, when it needs one. ``avatar``, ``size``, ``fps``, ``emotion``:
    as ``POST /v1/sessions`` takes them.
    """

    def __init__(
        self,
        *,
        url: str | None = None,
        token: str | None = None,
        avatar: str = "default",
        size: int | None = None,
        fps: int | None = None,
        emotion: str = "neutral",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._url = url
        self._token = token
        self._params: dict[str, Any] = {"avatar": avatar, "emotion": emotion}
        if size is not None:
            self._params["size"] = size
        if fps is not None:
            self._params["fps"] = fps
        self._local: Any = None
        self._client: HeadcastClient | None = None
        self._session: dict[str, Any] | None = None
        self._socket: AudioSocket | None = None
        self._socket_rate = 0
        self._refused_rates: set[int] = set()  # TTS rates the server would not take
        self._viewer: Viewer | None = None
        self._events_task: asyncio.Task[None] | None = None
        self._started = False
        self._speaking = False
        self._sound_until = 0.0  # monotonic time up to which session audio is pushed
        self.frames_out = 0  # images pushed (statistics for tests and logs)
        self.audio_out_s = 0.0  # seconds of sound pushed

    @property
    def session_id(self) -> str | None:
        return None if self._session is None else str(self._session["id"])

    # ---- lifecycle ----------------------------------------------------------------------

    async def setup(self, setup: FrameProcessorSetup) -> None:
        await super().setup(setup)
        await self._open(int(setup.audio_out_sample_rate or 24_000))

    async def _open(self, sample_rate: int) -> None:
        if self._url is None:
            from headcast.client.local_server import LocalServer

            self._local = LocalServer()
            url = await asyncio.to_thread(self._local.start)
        else:
            url = self._url
        self._client = HeadcastClient(url, self._token)
        self._session = await self._client.create_session(**self._params)
        await self._connect_socket(sample_rate)
        self._viewer = Viewer(self._client, on_frame=self._on_media)
        await self._viewer.watch(self._session["whep"])

    async def _connect_socket(self, sample_rate: int) -> None:
        """A socket announcing ``sample_rate``; the one it replaces is closed only once
        the new one is accepted (a rate the server refuses leaves the old one working)."""
        assert self._client is not None and self._session is not None
        sock = await self._client.connect(self._session["id"], sample_rate=sample_rate)
        old, self._socket, self._socket_rate = self._socket, sock, sample_rate
        if self._events_task is not None:
            self._events_task.cancel()
        if old is not None:
            with contextlib.suppress(Exception):
                await old.close()
        self._events_task = asyncio.get_running_loop().create_task(self._follow(sock))

    async def _reopen(self) -> None:
        """A new session after the last one was lost (the server restarted, or the
        session was deleted), tried on the next utterance; one error if that fails too."""
        await self._close(keep_started=True)
        try:
            await self._open(self._socket_rate or 24_000)
        except (HeadcastError, ConnectionError, OSError, TimeoutError) as exc:
            await self._close(keep_started=True)
            await self._error(f"the avatar could not start a new session ({exc})")

    async def _lost(self, sock: AudioSocket, why: str) -> None:
        """The session's socket closed under the pipeline: said once; the speech of the
        utterance goes nowhere, and the next utterance opens a new session."""
        if sock is not self._socket:
            return  # one this service replaced or closed itself
        self._socket = None
        self._speaking = False
        self._sound_until = 0.0
        await self._error(
            f"the avatar's session ended ({why}); a new one is opened on the next utterance"
        )

    async def _error(self, message: str) -> None:
        await self.push_frame(ErrorFrame(f"headcast: {message}"), FrameDirection.UPSTREAM)

    async def _close(self, keep_started: bool = False) -> None:
        self._started = self._started and keep_started
        if self._events_task is not None:
            self._events_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._events_task
            self._events_task = None
        for part in (self._viewer, self._socket):
            if part is not None:
                with contextlib.suppress(Exception):
                    await part.close()
        self._viewer = self._socket = None
        if self._client is not None and self._session is not None:
            with contextlib.suppress(Exception):
                await self._client.close_session(self._session["id"])
        self._session = None
        if self._local is not None:
            await asyncio.to_thread(self._local.stop)
            self._local = None

    async def cleanup(self) -> None:
        await super().cleanup()
        await self._close()

    # ---- frames in ----------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSAudioRawFrame):
            await self._send_speech(frame)
            return
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            self._started = True
            return
        sock = self._socket
        try:
            if isinstance(frame, TTSStartedFrame) and sock is None and self._started:
                await self._reopen()
            elif isinstance(frame, TTSStoppedFrame) and sock is not None:
                await sock.send_control({"type": "end_of_utterance"})
            elif isinstance(frame, InterruptionFrame) and sock is not None:
                self._speaking = False
                self._sound_until = 0.0  # no more of the cut speech's sound
                await sock.interrupt()
            elif isinstance(frame, EndFrame | CancelFrame):
                await self._close()
        except (HeadcastError, ConnectionError) as exc:
            if sock is not None:
                await self._lost(sock, str(exc))
        # on downstream whatever became of the session: a lost TTSStoppedFrame would
        # leave pipecat's "bot speaking" on
        await self.push_frame(frame, direction)

    async def _send_speech(self, frame: TTSAudioRawFrame) -> None:
        sock = self._socket
        if sock is None or frame.sample_rate in self._refused_rates:
            return
        try:
            if frame.sample_rate != self._socket_rate:  # a TTS at another rate than announced
                try:
                    await self._connect_socket(frame.sample_rate)
                except HeadcastError as exc:
                    # said once per rate; the socket at the rate that works stays open
                    self._refused_rates.add(frame.sample_rate)
                    await self._error(f"TTS audio at {frame.sample_rate} Hz is dropped ({exc})")
                    return
                if self._socket is None:
                    return
                sock = self._socket
            pcm = np.frombuffer(frame.audio, "<i2")
            if frame.num_channels > 1:
                pcm = pcm.reshape(-1, frame.num_channels).mean(axis=1).astype("<i2")
            await sock.send_pcm(pcm.tobytes())
        except (HeadcastError, ConnectionError) as exc:
            await self._lost(sock, str(exc))

    # ---- media and events out -----------------------------------------------------------

    async def _follow(self, sock: AudioSocket) -> None:
        """Track speech_started / speech_ended / interrupted from the session."""
        while True:
            try:
                event = await sock.next_event(within_s=EVENT_WAIT_S)
            except TimeoutError:
                continue  # a long idle stretch
            except ConnectionError:
                await self._lost(sock, f"its connection closed: {sock.closed_reason}")
                return
            kind = event.get("type")
            if kind == "speech_started":
                self._speaking = True
                self._sound_until = float("inf")
            elif kind in ("speech_ended", "interrupted"):
                self._speaking = False
                self._sound_until = (
                    0.0 if kind == "interrupted" else time.monotonic() + SPEECH_TAIL_S
                )
            elif kind == "error":
                await self.push_frame(
                    ErrorFrame(f"headcast: {event.get('message')}"), FrameDirection.UPSTREAM
                )

    async def _on_media(self, kind: str, frame: Any) -> None:
        if not self._started:
            return
        if kind == "video":
            rgb = frame.to_ndarray(format="rgb24")
            image = OutputImageRawFrame(
                image=rgb.tobytes(), size=(rgb.shape[1], rgb.shape[0]), format="RGB"
            )
            self.frames_out += 1
            await self.push_frame(image)
            return
        if time.monotonic() >= self._sound_until:
            return  # idle: no sound frames at all
        pcm = frame.to_ndarray().reshape(-1, len(frame.layout.channels))
        mono = pcm.mean(axis=1).astype("<i2") if pcm.shape[1] > 1 else pcm[:, 0].astype("<i2")
        self.audio_out_s += len(mono) / frame.sample_rate
        await self.push_frame(
            TTSAudioRawFrame(audio=mono.tobytes(), sample_rate=frame.sample_rate, num_channels=1)
        )
