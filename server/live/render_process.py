"""The render process's side of :mod:`server.live.procpool`: a loop answering calls on a pipe.

Each call names an operation on :class:`_Host` (open a session's pipeline, tick it,
interrupt, control, close); the answer is ``(OK, value)`` or ``(ERROR, message)``,
and an early onset's audio goes out as ``(PARTIAL, ops)`` before the answer.
"""

from __future__ import annotations

import signal
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from headcast.models.model_cache import ModelCache
from headcast.server.live.pipeline import SessionPipeline
from headcast.server.live.pipeline_spec import PipelineSpec, TickReply, build_pipeline
from headcast.server.settings import ServerSettings

OK, ERROR, PARTIAL = "ok", "error", "partial"  # what a message from a process is
WARM_SAMPLES = 8000  # half a second of silence through a new motion model


class _Host:
    """Pipelines of one worker process, with the renderers and models they share."""

    def __init__(self, settings: ServerSettings, conn: Connection) -> None:
        from headcast.server.live.loaders import default_motion_loader, default_renderer_factory

        self.conn = conn
        self.models = ModelCache(
            default_motion_loader(settings), default_renderer_factory(settings)
        )
        self.pipelines: dict[str, SessionPipeline] = {}

    def renderer(self, avatar: str | None, size: int) -> Any:
        return self.models.renderer(avatar, size)

    def model(self, fps: int) -> Any:
        return self.models.motion(fps)

    def warm(self, avatar: str | None, sizes: list[int], fps: int) -> None:
        """Load, and run once, what a session at ``avatar``/``sizes``/``fps`` will use: a
        model's or renderer's first run in a process allocates and compiles, and a
        session's first frames must not pay for it (they would be late)."""
        from headcast.models.channels import zeros
        from headcast.server.live.loaders import default_streamer

        if not self.models.has_motion(fps):
            default_streamer(self.model(fps)).push(np.zeros(WARM_SAMPLES, np.float32))
        for size in sizes:
            if not self.models.has_renderer(avatar, size):
                self.renderer(avatar, size).render(zeros())

    def open(self, key: str, spec: PipelineSpec) -> None:
        from headcast.server.live.loaders import default_streamer

        model = self.model(spec.fps)
        p = build_pipeline(
            spec,
            streamer=default_streamer(model),
            render=self.renderer(spec.avatar, spec.size).render,
        )
        p.audio.journal = []
        p.frames_journal = []

        def early_audio() -> None:  # an early onset's audio, before its ticks run
            self.conn.send((PARTIAL, p.audio.journal or []))
            p.audio.journal = []

        p.on_early_audio = early_audio
        self.pipelines[key] = p

    def tick(self, key: str, pcm: np.ndarray, n_last: int, render_video: bool) -> TickReply:
        p = self.pipelines[key]
        p.render_video = render_video
        if len(pcm):
            p.push(pcm)
        p.tick_until(n_last)
        return TickReply.take(self.pipelines[key])

    def interrupt(self, key: str, now: float | None) -> tuple[dict[str, int], TickReply]:
        cut = self.pipelines[key].interrupt(now)
        return cut, TickReply.take(self.pipelines[key])

    def control(self, key: str, method: str, args: tuple[Any, ...]) -> None:
        self.pipelines[key].control(method, *args)

    def close(self, key: str) -> None:
        from headcast.server.live.process_tuning import release_free_memory

        self.pipelines.pop(key, None)
        release_free_memory()


def serve(conn: Connection, settings: ServerSettings) -> None:
    """A worker process: answer calls on ``conn`` until told to stop or the pipe closes."""
    import cv2

    from headcast.server.live.process_tuning import limit_blas_threads

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
