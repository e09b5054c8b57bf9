"""Session pipelines in worker processes, so the event loop's interpreter keeps only I/O.

A session's per-frame work on a CPU (streaming motion model, mixer, warp render, colour
conversion) is native calls held together by Python. On threads it shares one
interpreter lock with the event loop and aiortc, and that lock, not the cores, is what
ran out first: on the 2-core development machine eight 256x256 sessions' ticks cost
2.0 ms of CPU per frame one after another on one thread, 2.8-3.0 ms on two threads at
once, and finished no sooner; the server fell behind at about 1.1 cores.

Here each worker process runs whole :class:`~server.live.pipeline.SessionPipeline` objects
for the sessions given to it, one call at a time. The server process keeps a
:class:`RemotePipeline` per session: the same :class:`~server.live.pipeline.PipelineOutput`
the tracks, events and metrics read (input staging, output audio ring, frames, stats),
brought up to date by each call's reply, which carries what the worker's pipeline
wrote (audio, frames, frames taken back) and its counters. Speech pushed on the event
loop is staged here and travels with the next tick. Replies carry I420 frames only
(98 KB at 256x256), not the RGB image as well. The process's side is
:mod:`server.live.render_process`.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import secrets
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from headcast.server.live.output import Frame, PipelineOutput
from headcast.server.live.pipeline_spec import PipelineSpec, TickReply
from headcast.server.live.render_process import ERROR, PARTIAL, serve
from headcast.server.settings import ServerSettings

log = logging.getLogger(__name__)

CLK_TCK = os.sysconf("SC_CLK_TCK")
STOP_TIMEOUT_S = 3.0
CALL_TIMEOUT_S = 60.0  # a call not answered by then: the process is stuck, end it
MAX_DEFAULT_PROCESSES = 32


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
        self._remote_dropped = 0
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

    def _apply(self, reply: TickReply) -> None:
        self._apply_audio(reply.audio)
        if reply.dropped_from is not None:
            self.drop_frames(reply.dropped_from)
        for frame in reply.frames:
            self.store_frame(frame)
        self.next_tick, self.next_frame = reply.next_tick, reply.next_frame
        self.motion_late, self.lips_late = reply.motion_late, reply.lips_late
        self.skipped_renders = reply.skipped_renders
        self.early_onsets_taken = reply.early_onsets_taken
        self.drained_samples = reply.drained_samples
        self.tick_cpu_s = reply.tick_cpu_s
        self.render_s.extend(reply.render_s)
        self.tick_s.extend(reply.tick_s)
        self._remote_buffered = reply.buffered
        # Speech is dropped in two places: this side's staging buffer and the worker's.
        self.input.count_dropped(max(0, reply.dropped_samples - self._remote_dropped))
        self._remote_dropped = reply.dropped_samples

    def tick_until(self, n_last: int) -> list[Frame]:
        with self._lock:
            reply = self._call("tick", self._staged(), n_last, self.render_video)
            self._apply(reply)
        return list(reply.frames)

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
