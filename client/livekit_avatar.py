"""The LiveKit avatar worker: a headcast session as a ``livekit.agents`` ``VideoGenerator``.

In a LiveKit room the agent's ``DataStreamAudioOutput`` sends its TTS audio to an avatar
participant (byte stream ``lk.audio_stream``, one stream per utterance), asks it to
``lk.clear_buffer`` on an interruption and waits for one ``lk.playback_finished`` per
utterance. livekit-agents' own ``DataStreamAudioReceiver`` and ``AvatarRunner`` speak
that protocol; :class:`HeadcastVideoGenerator` is the part between them: it sends the
audio to a headcast session (WebSocket), receives the session's video and sound (WHEP)
and yields them as ``rtc.VideoFrame`` / ``rtc.AudioFrame``, and yields exactly one
``AudioSegmentEnd`` per utterance — once the session has played all of it, never for an
utterance that was cleared (the runner reports that one as interrupted itself).

``python -m headcast.client.livekit_avatar --livekit-url wss://… --token … --headcast
http://127.0.0.1:8080`` runs one worker; ``headcast serve`` launches them on
``POST /v1/livekit/workers`` (docs/agents.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents.voice.avatar import (
    AudioSegmentEnd,
    AvatarOptions,
    AvatarRunner,
    DataStreamAudioReceiver,
    VideoGenerator,
)

from headcast.client.audio_socket import AudioSocket
from headcast.client.http_client import HeadcastClient
from headcast.client.viewer import Viewer

OUT_RATE = 48_000  # the session's sound as WebRTC delivers it (Opus), downmixed to mono
DRAIN_POLL_S = 0.05  # how often the session is asked whether it has played everything
IN_FLIGHT_S = 0.15  # sound already sent by the server but not yet received here
QUEUE_FRAMES = 64  # frames waiting for the runner; video beyond this is dropped
SESSION_POLL_S = 2.0  # how often the worker checks that its session still exists

# what the generator yields: rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd
Out = Any


class HeadcastVideoGenerator(VideoGenerator):
    """The avatar of headcast session ``session`` (as ``POST /v1/sessions`` returned it)."""

    def __init__(self, client: HeadcastClient, session: dict[str, Any]) -> None:
        self.client = client
        self.session = session
        self._out: asyncio.Queue[Out] = asyncio.Queue(QUEUE_FRAMES)
        self._socket: AudioSocket | None = None
        self._socket_rate = 0
        self._viewer: Viewer | None = None
        self._utterance = 0  # counts utterances; a clear starts a new one
        self._sounding = False  # the current utterance's sound is being yielded
        self._drain: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        self.segments_ended = 0  # AudioSegmentEnd yielded (statistics)

    async def start(self) -> None:
        """Start receiving the session's media (the idle avatar, before any audio)."""
        self._viewer = Viewer(self.client, on_frame=self._on_media)
        await self._viewer.watch(self.session["whep"])

    # ---- audio in ---------------------------------------------------------------------

    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        if isinstance(frame, AudioSegmentEnd):
            if self._socket is not None and self._sounding:
                await self._socket.send_control({"type": "end_of_utterance"})
                self._drain = asyncio.create_task(self._end_after_playout(self._utterance))
            return
        if self._socket is None or frame.sample_rate != self._socket_rate:
            await self._open_socket(frame.sample_rate)
        assert self._socket is not None
        pcm = np.frombuffer(frame.data, np.int16)
        if frame.num_channels > 1:
            pcm = pcm.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
        self._sounding = True
        await self._socket.send_pcm(pcm.tobytes())

    async def _open_socket(self, sample_rate: int) -> None:
        if self._socket is not None:
            await self._socket.close()
        self._socket = await self.client.connect(self.session["id"], sample_rate=sample_rate)
        self._socket_rate = sample_rate

    def clear_buffer(self) -> None:
        """Stop now: the session is interrupted and this utterance gets no segment end."""
        self._utterance += 1
        self._sounding = False
        if self._drain is not None:
            self._drain.cancel()
            self._drain = None
        if self._socket is not None:
            task = asyncio.ensure_future(self._socket.interrupt())
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _end_after_playout(self, utterance: int) -> None:
        """Once the session has played everything it was given: AudioSegmentEnd."""
        sid = self.session["id"]
        while True:
            await asyncio.sleep(DRAIN_POLL_S)
            if utterance != self._utterance:
                return
            stats = await self.client.session(sid)
            if not stats["speaking"] and stats["buffered_ms"] == 0:
                break
        await asyncio.sleep(IN_FLIGHT_S)
        if utterance != self._utterance:
            return
        self._sounding = False
        self._utterance += 1
        self.segments_ended += 1
        await self._out.put(AudioSegmentEnd())

    # ---- media out --------------------------------------------------------------------

    async def _on_media(self, kind: str, frame: Any) -> None:
        if kind == "video":
            if self._out.full():
                return  # the runner is behind: drop video, never sound or segment ends
            rgba = frame.to_ndarray(format="rgba")
            height, width = rgba.shape[:2]
            await self._out.put(
                rtc.VideoFrame(width, height, rtc.VideoBufferType.RGBA, rgba.tobytes())
            )
            return
        if not self._sounding:
            return  # idle: video only (silence would count as playback)
        pcm = frame.to_ndarray().reshape(-1, len(frame.layout.channels))
        mono = pcm.mean(axis=1).astype(np.int16) if pcm.shape[1] > 1 else pcm[:, 0]
        await self._out.put(rtc.AudioFrame(mono.tobytes(), frame.sample_rate, 1, len(mono)))

    def __aiter__(self) -> AsyncIterator[Out]:
        return self

    async def __anext__(self) -> Out:
        return await self._out.get()

    async def aclose(self) -> None:
        if self._drain is not None:
            self._drain.cancel()
        for part in (self._viewer, self._socket):
            if part is not None:
                with contextlib.suppress(Exception):
                    await part.close()


async def run_worker(
    livekit_url: str,
    livekit_token: str,
    headcast_url: str,
    *,
    session_id: str | None = None,
    headcast_token: str | None = None,
    avatar: str = "default",
    size: int = 512,
    fps: int = 25,
) -> None:
    """Join the room as the avatar and play the agent's speech until the room closes."""
    client = HeadcastClient(headcast_url, headcast_token)
    owned = session_id is None
    if session_id is None:
        session = await client.create_session(avatar=avatar, size=size, fps=fps)
    else:
        session = await client.session(session_id)
    room = rtc.Room()
    generator = HeadcastVideoGenerator(client, session)
    runner: AvatarRunner | None = None
    try:
        await room.connect(livekit_url, livekit_token)
        await generator.start()
        options = AvatarOptions(
            video_width=session["size"],
            video_height=session["size"],
            video_fps=session["fps"],
            audio_sample_rate=OUT_RATE,
            audio_channels=1,
        )
        runner = AvatarRunner(
            room, audio_recv=DataStreamAudioReceiver(room), video_gen=generator, options=options
        )
        await runner.start()
        gone = asyncio.Event()
        room.on("disconnected", lambda *_: gone.set())
        watch = asyncio.create_task(_session_ends(client, session["id"], gone))
        await gone.wait()
        watch.cancel()
    finally:
        if runner is not None:
            await runner.aclose()
        await generator.aclose()
        await room.disconnect()
        if owned:
            with contextlib.suppress(Exception):
                await client.close_session(session["id"])


async def _session_ends(client: HeadcastClient, sid: str, gone: asyncio.Event) -> None:
    """Set ``gone`` once the headcast session is closed (deleted, reaped, server gone)."""
    from headcast.client.http_client import HeadcastError

    while not gone.is_set():
        await asyncio.sleep(SESSION_POLL_S)
        try:
            await client.session(sid)
        except HeadcastError as exc:
            if exc.status in (0, 404):
                gone.set()


def main() -> None:
    parser = argparse.ArgumentParser(description="a headcast avatar in a LiveKit room")
    parser.add_argument("--livekit-url", required=True)
    parser.add_argument("--token", required=True, help="the avatar participant's room token")
    parser.add_argument("--headcast", required=True, help="headcast server URL")
    parser.add_argument("--session", help="an open headcast session (default: a new one)")
    parser.add_argument("--headcast-token", help="session token or API key for headcast")
    parser.add_argument("--avatar", default="default")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        asyncio.run(
            run_worker(
                args.livekit_url,
                args.token,
                args.headcast,
                session_id=args.session,
                headcast_token=args.headcast_token,
                avatar=args.avatar,
            )
        )
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a command: the reason in one line (the server keeps it)
        print(f"avatar worker: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"avatar worker ended after {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
