"""Session pipelines in worker processes, so the event loop's interpreter keeps only I/O.

A session's per-frame work on a CPU (streaming motion model, mixer, warp render, colour
conversion) is native calls held together by Python. On threads it shares one
interpreter lock with the event loop and aiortc, and that lock, not the cores, is what
ran out first: on the 2-core development machine eight 256x256 sessions' ticks cost
2.0 ms of CPU per frame one after another on one thread, 2.8-3.0 ms on two threads at
once, and finished no sooner; the server fell behind at about 1.1 cores.

Here each worker process runs whole :class:`~server.pipeline.SessionPipeline` objects
for the sessions given to it, one call at a time. The server process keeps a
:class:`RemotePipeline` per session: the same :class:`~server.pipeline.PipelineOutput`
the tracks, events and metrics read (input staging, output audio ring, frames, stats),
brought up to date by each call's reply, which carries what the worker's pipeline
wrote (audio, frames, frames taken back) and its counters. Speech pushed on the event
loop is staged here and travels with the next tick. Replies carry I420 frames only
(98 KB at 256x256), not the RGB image as well.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import secrets
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from server.clock import MediaClock
from server.output import Frame, PipelineOutput
from server.pipeline import SessionPipeline
from server.settings import ServerSettings

log = logging.getLogger(__name__)

CLK_TCK = os.sysconf("SC_CLK_TCK")
STOP_TIMEOUT_S = 3.0
CALL_TIMEOUT_S = 60.0  # a call not answered by then: the process is stuck, end it
MAX_DEFAULT_PROCESSES = 32
OK, ERROR, PARTIAL = "ok", "error", "partial"  # what a message from a process is


def process_stat(pid: int | str) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used: user + system) of a process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def default_processes(cores: int) -> int:
    """Render processes when the setting says -1: two per core, at most 32.

    More processes than cores: a process runs its sessions' ticks one after another, so
    when the host takes a core away for a moment, every session in that process waits.
    Eight 256x256 sessions on the 2-core development machine, interleaved runs: with two
    processes the slowest session made 22.3-24.9 frames/s (late renders 1-176 in 10 s),
    with four 24.1-24.8 (3-12); each process holds about 190 MB.
    """
    return max(1, min(2 * cores, MAX_DEFAULT_PROCESSES))


class WorkerLost(RuntimeError):
    """The render process serving a session exited."""


class RemoteError(RuntimeError):
    """A call failed inside the render process; the message names the exception."""


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


class Worker:
    """One render process and the pipe to it; calls are serialised."""

    def __init__(self, ctx: Any, settings: ServerSettings, index: int, phase: float) -> None:
        self.phase = phase  # where in a frame its sessions tick (see clock.aligned_start)
        parent, child = ctx.Pipe()
        self.process = ctx.Process(
            target=serve, args=(child, settings), name=f"headcast-render-{index}", daemon=True
        )
        self.process.start()
        child.close()
        self.conn: Connection = parent
        self.lock = threading.Lock()  # one call at a time
        self._count_lock = threading.Lock()
        self.sessions = 0
        self.alive = True

    def count(self, delta: int) -> None:
        """Sessions placed here (``+1``) or gone (``-1``)."""
        with self._count_lock:
            self.sessions += delta

    def call(self, op: str, *args: Any, partial: Callable[[Any], None] | None = None) -> Any:
        """Run ``op`` in the process (blocking: call it from a worker thread).

        Messages the process sends before its answer go to ``partial`` as they come.
        """
        with self.lock:
            if not self.alive:
                raise WorkerLost(f"render process {self.process.pid} is gone")
            try:
                self.conn.send((op, args))
                while True:
                    if not self.conn.poll(CALL_TIMEOUT_S):
                        self.alive = False
                        self.process.kill()
                        raise WorkerLost(f"render process {self.process.pid} stopped answering")
                    kind, value = self.conn.recv()
                    if kind != PARTIAL:
                        break
                    if partial is not None:
                        partial(value)
            except (EOFError, OSError) as exc:
                self.alive = False
                raise WorkerLost(f"render process {self.process.pid} exited") from exc
        if kind == ERROR:
            raise RemoteError(value)
        return value

    def cpu_seconds(self) -> float:
        """CPU time the process has used (user + system), 0 once it is gone."""
        stat = process_stat(self.process.pid)
        return 0.0 if stat is None else stat[1]

    def close(self) -> None:
        if self.alive:
            with contextlib.suppress(WorkerLost, RemoteError, OSError):
                self.call("stop")
        self.alive = False
        self.process.join(timeout=STOP_TIMEOUT_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=STOP_TIMEOUT_S)
        self.conn.close()


class ProcessPool:
    """``processes`` render processes; each session lives in the least loaded one."""

    def __init__(self, processes: int, settings: ServerSettings) -> None:
        self._ctx = mp.get_context("spawn")  # no fork of a process running threads
        self._settings = settings
        self.workers = [Worker(self._ctx, settings, i, i / processes) for i in range(processes)]
        self._lock = threading.Lock()

    def pick(self) -> Worker:
        """The worker with the fewest sessions (a lost one is replaced first); the caller
        owns one of its session slots (:meth:`RemotePipeline.close` or
        :meth:`release` gives it back)."""
        with self._lock:
            for i, w in enumerate(self.workers):
                if not w.alive:
                    log.warning("render process %s is gone; starting another", w.process.pid)
                    w.close()
                    self.workers[i] = Worker(self._ctx, self._settings, i, w.phase)
            worker = min(self.workers, key=lambda w: w.sessions)
            worker.count(+1)
            return worker

    def release(self, worker: Worker) -> None:
        worker.count(-1)

    def cpu_seconds(self) -> float:
        return sum(w.cpu_seconds() for w in self.workers)

    def close(self) -> None:
        for w in self.workers:
            w.close()


class RemotePipeline(PipelineOutput):
    """The server process's side of a pipeline running in a :class:`Worker`."""

    def __init__(self, worker: Worker, spec: PipelineSpec) -> None:
        super().__init__(spec.clock, spec.max_buffered_s, spec.echo_audio)
        self.early_onsets = spec.early_onsets
        self._worker = worker
        self._spec: PipelineSpec | None = spec  # sent with the first call
        self._key = secrets.token_hex(8)
        self._remote_buffered = 0
        self._closed = False
        # one call and the mirroring of its reply at a time, in order (a tick's reply
        # must not land after a later interrupt's)
        self._lock = threading.Lock()

    def buffered(self) -> int:
        """Speech samples waiting: staged here plus buffered in the worker."""
        return len(self.input) + self._remote_buffered

    def _staged(self) -> np.ndarray:
        pcm, got = self.input.pop(len(self.input))
        return pcm[:got]

    def _call(self, op: str, *args: Any) -> Any:
        if self._spec is not None:
            self._worker.call("open", self._key, self._spec)
            self._spec = None
        return self._worker.call(op, self._key, *args, partial=self._apply_audio)

    def _apply_audio(self, ops: list[tuple[str, int, np.ndarray | None]]) -> None:
        for kind, start, samples in ops:
            if kind == "write" and samples is not None:
                self.audio.write(start, samples)
            else:
                self.audio.clear_from(start)

    def _apply(self, reply: dict[str, Any]) -> None:
        self._apply_audio(reply["audio"])
        if reply["dropped_from"] is not None:
            self.drop_frames(reply["dropped_from"])
        for frame in reply["frames"]:
            self.store_frame(frame)
        for name in ("next_tick", "next_frame", "motion_late", "lips_late", "skipped_renders"):
            setattr(self, name, reply[name])
        self.early_onsets_taken = reply["early_onsets_taken"]
        self.tick_cpu_s = reply["tick_cpu_s"]
        self.render_s.extend(reply["render_s"])
        self.tick_s.extend(reply["tick_s"])
        self._remote_buffered = reply["buffered"]
        self.input.dropped_samples = reply["dropped_samples"]

    def tick_until(self, n_last: int) -> list[Frame]:
        with self._lock:
            reply = self._call("tick", self._staged(), n_last, self.render_video)
            self._apply(reply)
        return list(reply["frames"])

    def try_splice(self, n_last: int) -> bool:
        return False  # early onsets happen in the worker, on the tick the push wakes

    def interrupt(self, now: float | None = None) -> dict[str, int]:
        with self._lock:
            staged = len(self._staged())
            cut, reply = self._call("interrupt", now)
            self._apply(reply)
        cut["dropped_samples"] += staged
        return dict(cut)

    def control(self, method: str, *args: Any) -> None:
        with self._lock:
            self._call("control", method, args)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._worker.count(-1)
            if self._spec is None:  # opened there
                self._worker.call("close", self._key)


# ---- the worker process ------------------------------------------------------------


class _Host:
    """Pipelines of one worker process, with the renderers and models they share."""

    def __init__(self, settings: ServerSettings, conn: Connection) -> None:
        from server.loaders import default_motion_loader, default_renderer_factory

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
        from server.loaders import default_streamer

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
        self.pipelines.pop(key, None)


def serve(conn: Connection, settings: ServerSettings) -> None:
    """A worker process: answer calls on ``conn`` until told to stop or the pipe closes."""
    import cv2

    from server.scheduler import limit_blas_threads

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
