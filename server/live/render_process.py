"""The render process's side of :mod:`server.live.procpool`: a loop answering calls on a pipe.

Each call names an operation on :class:`_Host` (open a session's pipeline, tick it,
interrupt, control, close); the answer is ``(OK, value)`` or ``(ERROR, message)``,
and an early onset's audio goes out as ``(PARTIAL, ops)`` before the answer.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from server.live.clock import MediaClock
from server.live.output import Frame
from server.live.pipeline import SessionPipeline
from server.settings import ServerSettings

OK, ERROR, PARTIAL = "ok", "error", "partial"  # what a message from a process is


@dataclass(frozen=True)
class PipelineSpec:
    """What a worker needs to build a session's pipeline (picklable)."""

    avatar: str | None  # what create_renderer takes: None = the built-in default
    size: int
    fps: int
    seed: int | None
    emotion: str
    clock: MediaClock
    max_buffered_s: float
    echo_audio: bool
    early_onsets: bool
    read_ahead: int
    drain_above_s: float = 0.0


class _Host:
    """Pipelines of one worker process, with the renderers and models they share."""

    def __init__(self, settings: ServerSettings, conn: Connection) -> None:
        from server.live.loaders import default_motion_loader, default_renderer_factory

        self.conn = conn
        self.make_renderer = default_renderer_factory(settings)
        self.load_motion = default_motion_loader(settings)
        self.renderers: dict[tuple[str | None, int], Any] = {}
        self.models: dict[int, Any] = {}
        self.pipelines: dict[str, SessionPipeline] = {}

    def renderer(self, avatar: str | None, size: int) -> Any:
        if (avatar, size) not in self.renderers:
            self.renderers[avatar, size] = self.make_renderer(avatar, size)
        return self.renderers[avatar, size]

    def model(self, fps: int) -> Any:
        if fps not in self.models:
            self.models[fps] = self.load_motion(fps)
        return self.models[fps]

    def warm(self, avatar: str | None, sizes: list[int], fps: int) -> None:
        self.model(fps)
        for size in sizes:
            self.renderer(avatar, size)

    def open(self, key: str, spec: PipelineSpec) -> None:
        from models.mixer import MotionMixer
        from server.live.loaders import default_streamer

        model = self.model(spec.fps)
        p = SessionPipeline(
            clock=spec.clock,
            streamer=default_streamer(model),
            mouth_names=tuple(model.names),
            mixer=MotionMixer(spec.fps, seed=spec.seed, emotion=spec.emotion),
            render=self.renderer(spec.avatar, spec.size).render,
            max_buffered_s=spec.max_buffered_s,
            echo_audio=spec.echo_audio,
            early_onsets=spec.early_onsets,
            read_ahead=spec.read_ahead,
            drain_above_s=spec.drain_above_s,
        )
        p.audio.journal = []
        p.frames_journal = []

        def early_audio() -> None:  # an early onset's audio, before its ticks run
            self.conn.send((PARTIAL, p.audio.journal or []))
            p.audio.journal = []

        p.on_early_audio = early_audio
        self.pipelines[key] = p

    def _reply(self, key: str) -> dict[str, Any]:
        p = self.pipelines[key]
        frames = [
            Frame(f.index, f.coeffs, f.speech, None if f.yuv is not None else f.image, f.yuv)
            for f in p.frames_journal or []
        ]
        reply = {
            "audio": list(p.audio.journal or []),
            "frames": frames,
            "dropped_from": p.dropped_from,
            "next_tick": p.next_tick,
            "next_frame": p.next_frame,
            "motion_late": p.motion_late,
            "lips_late": p.lips_late,
            "skipped_renders": p.skipped_renders,
            "early_onsets_taken": p.early_onsets_taken,
            "tick_cpu_s": p.tick_cpu_s,
            "render_s": list(p.render_s),
            "tick_s": list(p.tick_s),
            "buffered": len(p.input),
            "dropped_samples": p.input.dropped_samples,
            "drained_samples": p.drained_samples,
        }
        p.audio.journal = []
        p.frames_journal = []
        p.dropped_from = None
        p.render_s.clear()  # sent: the server process keeps the statistics
        p.tick_s.clear()
        return reply

    def tick(self, key: str, pcm: np.ndarray, n_last: int, render_video: bool) -> dict[str, Any]:
        p = self.pipelines[key]
        p.render_video = render_video
        if len(pcm):
            p.push(pcm)
        p.tick_until(n_last)
        return self._reply(key)

    def interrupt(self, key: str, now: float | None) -> tuple[dict[str, int], dict[str, Any]]:
        cut = self.pipelines[key].interrupt(now)
        return cut, self._reply(key)

    def control(self, key: str, method: str, args: tuple[Any, ...]) -> None:
        self.pipelines[key].control(method, *args)

    def close(self, key: str) -> None:
        from server.live.process_tuning import release_free_memory

        self.pipelines.pop(key, None)
        release_free_memory()


def serve(conn: Connection, settings: ServerSettings) -> None:
    """A worker process: answer calls on ``conn`` until told to stop or the pipe closes."""
    import cv2

    from server.live.process_tuning import limit_blas_threads

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops its workers itself
    cv2.setNumThreads(1)  # the processes are the parallelism
    limit_blas_threads(1)
    host = _Host(settings, conn)
    while True:
        try:
            op, args = conn.recv()
        except (EOFError, OSError):
            return
        if op == "stop":
            conn.send((OK, None))
            return
        try:
            value = getattr(host, op)(*args)
        except Exception as exc:
            conn.send((ERROR, f"{type(exc).__name__}: {exc}"))
        else:
            conn.send((OK, value))
