"""A live session: the async shell around one :class:`~server.live.pipeline.SessionPipeline`.

It owns the session's media clock, the ticker task that runs the pipeline on worker
threads once per frame, the WebRTC peers watching it (WHEP resources), microphone
readers in mirror mode, and the event streams sent back over WebSockets. Everything it
starts it keeps, and :meth:`Session.close` cancels and closes all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection

from headcast.models.channels import ALL_CHANNELS, zeros
from headcast.server.live.clock import (
    AUDIO_CHUNK,
    OPUS_LOOKAHEAD_SAMPLES,
    SAMPLE_RATE,
    MediaClock,
    aligned_start,
)
from headcast.server.live.events import EventStream
from headcast.server.live.microphone import read_microphone
from headcast.server.live.output import PipelineOutput
from headcast.server.live.pipeline import EARLY_ONSET_MIN_SAMPLES
from headcast.server.live.playback_events import PlaybackEvents
from headcast.server.live.process_tuning import release_free_memory

log = logging.getLogger(__name__)

InputMode = Literal["websocket", "mirror", "upload"]
MAX_PEERS = 4  # viewers per session
# A viewer whose connection is not up this long after its answer is dropped (an offer
# aiortc accepted but cannot connect, a client that vanished before ICE finished).
CONNECT_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class SessionParams:
    avatar: str
    size: int
    fps: int
    emotion: str
    input: InputMode
    seed: int | None = None


def _settle(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


class Session:
    """One avatar speaking: clock, pipeline, peers, events."""

    def __init__(
        self,
        params: SessionParams,
        *,
        pipeline_factory: Callable[[MediaClock], PipelineOutput],
        delay_frames: int,
        idle_image: np.ndarray,
        delay_s: float | None = None,
        run: Callable[..., Any],
        on_cost: Callable[[float, int], None] | None = None,
        phase: float = 0.0,
        owner: str | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self.id = secrets.token_urlsafe(9)
        self.params = params
        self.created = time.monotonic()
        start = aligned_start(params.fps, phase=phase)
        self.clock = MediaClock(params.fps, delay_frames, start=start, output_delay=delay_s)
        self.pipeline = pipeline_factory(self.clock)
        self.idle_image = idle_image  # uint8 (S, S, 3): sent until the first frame is made
        self._run = run  # awaitable runner onto the worker pool
        self._on_cost = on_cost
        self.closed = False
        #: closed because a client deleted it through the API (final for its clients:
        #: no reconnect), not reaped, failed or closed with the server
        self.deleted = False
        #: set on a session made for its viewer (POST /v1/whep): closes it with that viewer
        self.close_without_viewers: Callable[[], Awaitable[object]] | None = None
        self.peers: dict[str, RTCPeerConnection] = {}
        self._dropped_by_gone_viewers = 0
        self.claimed = False  # a viewer has connected or a WebSocket has come
        self.connect_timeout_s = connect_timeout_s
        self.viewers_timed_out = 0
        self.viewers_left = 0  # viewers whose connection closed, failed or was deleted
        #: identity of the session token that opened it (None: the API key, or no auth)
        self.owner = owner
        self.interrupts = 0
        #: held while a viewer's offer is answered: a close waits for it, so no peer
        #: connection is closed in the middle of gathering (aiortc then leaks its sockets)
        self.negotiation = asyncio.Lock()
        #: the event stream of the WebSocket sending speech: one at a time
        self.speaker: EventStream | None = None
        self.tracks: dict[str, list[MediaStreamTrack]] = {}
        self.streams: set[EventStream] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.events = PlaybackEvents(self.clock, lambda: self.streams)
        self.last_activity = time.monotonic()
        # timing stats
        self.first_frame_s: float | None = None
        self.video_sent_at: deque[tuple[int, float]] = deque(maxlen=64)
        self.audio_sent_at: deque[tuple[int, float]] = deque(maxlen=128)
        self._wake: asyncio.Future[None] | None = None
        self._onset_pending = False  # speech after silence came while a tick was running
        self.ticker = self._spawn(self._tick_loop(), "ticker")

    # ---- tasks ----------------------------------------------------------------------

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"session-{self.id}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _tick_loop(self) -> None:
        try:
            await self._ticks()
        except asyncio.CancelledError:
            raise
        except Exception:
            # e.g. its render process died: end the session cleanly rather than freeze it
            log.exception("session %s: the pipeline failed; closing the session", self.id)
            await self.close()

    async def _ticks(self) -> None:
        clock = self.clock
        loop = asyncio.get_running_loop()
        woken = False
        while not self.closed:
            n = clock.input_tick()
            if n >= self.pipeline.next_tick or woken:
                ticks = n - self.pipeline.next_tick + 1
                self.events.made(await self._run(self.pipeline.tick_until, n))
                if self._on_cost is not None and self.pipeline.render_video and ticks > 0:
                    # thread CPU time: what this session costs, whatever else the machine runs
                    self._on_cost(self.pipeline.tick_cpu_s, ticks)
                self.events.emit(self.pipeline, self.dropped_frames())
            if self._onset_pending:
                self._onset_pending, woken = False, True
                continue
            wait = clock.tick_time(self.pipeline.next_tick) - time.monotonic()
            # sleep until the next tick, or until speech after silence wakes us (push)
            self._wake = wake = loop.create_future()
            timer = loop.call_later(max(wait, 0.0), _settle, wake, False)
            try:
                woken = bool(await wake)
            finally:
                timer.cancel()
                self._wake = None

    # ---- inputs -----------------------------------------------------------------------

    def push(self, pcm16k: np.ndarray) -> None:
        """Queue speech: float32 (N,) 16 kHz mono -1..1."""
        self.last_activity = time.monotonic()
        # speech after silence, enough of it to start early (a real-time trickle is not)
        onset = not self.pipeline.buffered() and len(pcm16k) >= EARLY_ONSET_MIN_SAMPLES
        self.pipeline.push(pcm16k)
        if onset and self.pipeline.early_onsets:
            self.pipeline.try_splice(self.clock.input_tick())
            # its frames now, not at the next tick
            if self._wake is not None:
                _settle(self._wake, True)
            else:
                self._onset_pending = True

    async def interrupt(self) -> dict[str, Any]:
        self.interrupts += 1  # speech decoded before this and pushed after it is not said
        cut = await self._run(self.pipeline.interrupt, time.monotonic())
        return self.events.interrupted(cut)

    async def control(self, method: str, *args: Any) -> None:
        """``mixer.<method>(*args)`` on the worker side, between ticks."""
        await self._run(self.pipeline.control, method, *args)

    # ---- what the API attaches: viewers' tracks, WebSocket streams --------------------

    def close_with_last_viewer(self, close: Callable[[], Awaitable[object]]) -> None:
        """A session made for its viewer (``POST /v1/whep``): ``close`` it with that viewer."""
        self.close_without_viewers = close

    def add_tracks(self, rid: str, tracks: list[MediaStreamTrack]) -> None:
        """Viewer ``rid``'s output tracks; video is rendered while anyone watches."""
        self.tracks[rid] = tracks
        self.pipeline.render_video = True

    def touch(self) -> None:
        """Something used the session now (its idle timeout counts from the last use)."""
        self.last_activity = time.monotonic()

    def open_stream(self, stream: EventStream) -> None:
        """A WebSocket's event stream joins: it gets the session's events."""
        self.streams.add(stream)
        self.claimed = True

    def close_stream(self, stream: EventStream) -> None:
        self.streams.discard(stream)
        self.touch()  # idle from when the last one leaves
        if self.speaker is stream:
            self.speaker = None

    def may_speak(self, stream: EventStream) -> bool:
        """Whether ``stream``'s socket may queue speech now: one socket speaks at a time,
        and it keeps the turn while its speech is queued or playing (or until it closes)."""
        busy = self.pipeline.buffered() or self.events.speaking
        if self.speaker is not None and self.speaker is not stream and busy:
            return False
        self.speaker = stream
        return True

    # ---- peers ------------------------------------------------------------------------

    def add_peer(self, pc: RTCPeerConnection) -> str:
        rid = secrets.token_urlsafe(9)
        self.peers[rid] = pc
        self.last_activity = time.monotonic()

        @pc.on("connectionstatechange")
        async def _state() -> None:
            if pc.connectionState == "connected":
                self.claimed = True
            elif pc.connectionState in ("failed", "closed"):
                await self.drop_viewer(rid)

        @pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and self.params.input == "mirror":
                self._spawn(read_microphone(self, track), f"mic-{rid}")

        self._spawn(self._expect_connection(rid, pc), f"connect-{rid}")
        return rid

    async def _expect_connection(self, rid: str, pc: RTCPeerConnection) -> None:
        await asyncio.sleep(self.connect_timeout_s)
        if self.peers.get(rid) is pc and pc.connectionState in ("new", "connecting"):
            log.info("session %s: viewer %s never connected; dropped", self.id, rid)
            self.viewers_timed_out += 1
            await self.drop_viewer(rid)

    async def drop_viewer(self, rid: str) -> bool:
        """Remove viewer ``rid`` (False if unknown); a session made for its viewer closes
        with its last one."""
        if not await self.remove_peer(rid):
            return False
        if not self.peers and not self.closed and self.close_without_viewers is not None:
            await self.close_without_viewers()
        return True

    async def remove_peer(self, rid: str) -> bool:
        pc = self.peers.pop(rid, None)
        self.last_activity = time.monotonic()  # idle from when the last one leaves
        for track in self.tracks.pop(rid, []):
            self._dropped_by_gone_viewers += _track_dropped(track)  # the total never falls
            track.stop()
        self.pipeline.render_video = bool(self.peers)
        if pc is None:
            return False
        self.viewers_left += 1
        await pc.close()
        return True

    # ---- events -----------------------------------------------------------------------

    def broadcast(self, event: dict[str, Any]) -> None:
        self.events.broadcast(event)

    def ready_event(self) -> dict[str, Any]:
        return {
            "type": "ready",
            "session": self.id,
            "fps": self.params.fps,
            "size": self.params.size,
            "sample_rate": SAMPLE_RATE,
            "delay_ms": round(self.clock.delay_s * 1000.0, 1),
            "channels": list(ALL_CHANNELS),
            "speaking": self.events.speaking,
        }

    # ---- stats ------------------------------------------------------------------------

    def dropped_frames(self) -> int:
        """Video frames viewers got as a repeat of the last one, or never got (all viewers).

        A render skipped because its send time had passed shows up here as the repeat it
        causes; ``late_renders`` in :meth:`stats` counts those causes on their own.
        """
        return self._dropped_by_gone_viewers + sum(
            _track_dropped(t) for tracks in self.tracks.values() for t in tracks
        )

    def frames_sent(self) -> int:
        """Video frames sent to all viewers, repeats included."""
        return sum(getattr(t, "sent", 0) for tracks in self.tracks.values() for t in tracks)

    def repeated_frames(self) -> int:
        """Video frames sent as a repeat of the last one (all viewers): sent, not new."""
        return sum(getattr(t, "repeated", 0) for tracks in self.tracks.values() for t in tracks)

    def on_video_sent(self, j: int, at: float) -> None:
        self.video_sent_at.append((j, at - self.clock.video_time(j)))

    def on_audio_sent(self, sample: int, at: float) -> None:
        self.audio_sent_at.append((sample, at))

    def on_first_frame(self, seconds: float) -> None:
        if self.first_frame_s is None:
            self.first_frame_s = seconds

    def av_offset_ms(self) -> float:
        """Mean send lateness of video minus audio (ms): 0 when both keep the clock."""
        if not self.video_sent_at or not self.audio_sent_at:
            return float("nan")
        video = np.mean([late for _, late in self.video_sent_at])
        audio = np.mean(
            [
                at - self.clock.audio_time((s - OPUS_LOOKAHEAD_SAMPLES) // AUDIO_CHUNK)
                for s, at in self.audio_sent_at
            ]
        )
        return float((video - audio) * 1000.0)

    def achieved_fps(self) -> float:
        sent = list(self.video_sent_at)
        if len(sent) < 2:
            return 0.0
        (j0, _), (j1, _) = sent[0], sent[-1]
        span = self.clock.video_time(j1) - self.clock.video_time(j0)
        return (len(sent) - 1) / span if span > 0 else 0.0

    def stats(self) -> dict[str, Any]:
        p = self.pipeline
        return {
            "id": self.id,
            "avatar": self.params.avatar,
            "size": self.params.size,
            "fps": self.params.fps,
            "input": self.params.input,
            "viewers": len(self.peers),
            "viewers_timed_out": self.viewers_timed_out,
            "speaking": self.events.speaking,
            "buffered_ms": round(p.buffered() * 1000.0 / SAMPLE_RATE, 1),
            "delay_ms": round(self.clock.delay_s * 1000.0, 1),
            "frames_sent": self.frames_sent(),
            "dropped_frames": self.dropped_frames(),
            "repeated_frames": self.repeated_frames(),
            "late_renders": p.skipped_renders,
            "motion_late_frames": p.motion_late,
            "early_onsets": p.early_onsets_taken,
            "dropped_audio_ms": round(p.input.dropped_samples * 1000.0 / SAMPLE_RATE, 1),
            "drained_pause_ms": round(p.drained_samples * 1000.0 / SAMPLE_RATE, 1),
            "first_frame_ms": None if self.first_frame_s is None else self.first_frame_s * 1e3,
            "age_s": round(time.monotonic() - self.created, 1),
        }

    # ---- teardown ---------------------------------------------------------------------

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        async with self.negotiation:  # an offer being answered finishes first
            for rid in list(self.peers):
                await self.remove_peer(rid)
        for stream in self.streams:
            stream.close()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        try:
            await self._run(self.pipeline.close)
        except Exception as exc:  # a lost worker process: nothing left to release there
            log.warning("session %s: closing its pipeline failed: %s", self.id, exc)
        self.idle_image = zeros()  # drop the frame reference early
        await self._run(release_free_memory)


def _track_dropped(track: MediaStreamTrack) -> int:
    return int(getattr(track, "repeated", 0) + getattr(track, "skipped", 0))
