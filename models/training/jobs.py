"""Data jobs in worker processes, each job in a fresh process so its result does not
depend on the jobs before it.

The synthesisers keep state between calls inside a process: libespeak-ng's Klatt voices
carry their noise generator on, and a voice synthesised after another comes out a few
samples longer or shorter. A job run after other jobs in the same process then does not
produce what it produces alone, and the held-out audio of an evaluation (or the training
data) came out different with one worker than with two. Here every job gets a process
of its own, forked from the calling process, whatever the number of workers; the
callers never synthesise in their own process, so every job starts from a synthesiser
that has not run.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar, cast

log = logging.getLogger(__name__)
J = TypeVar("J")
R = TypeVar("R")


def default_signals() -> None:
    """Pool workers stop on SIGTERM as processes do by default (the CLI turns it into
    an interrupt for its own process, which a forked worker inherits)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def in_fresh_processes(
    fn: Callable[[J], R],
    jobs: Iterable[J],
    workers: int,
    progress: Callable[[int, int], None] | None = None,
) -> list[R]:
    """``[fn(job) for job in jobs]``, each call in a fresh process, ``workers`` at a time
    (at least one). ``fn`` must be a module-level function; ``progress(done, total)``.
    A job's exception is raised here once it ends; the others still running are stopped.

    One forked process per job, each handing its result back through a pipe of its own:
    a ``multiprocessing.Pool`` with ``maxtasksperchild=1`` can hang on exit (its worker
    thread forks a replacement while the pool is being torn down, and that worker waits
    on the task queue's lock for ever).
    """
    from headcast.models.training.synth import espeak_started

    if espeak_started():
        log.warning(
            "libespeak-ng already ran in this process; jobs forked from it start from its "
            "state, so their audio may differ from a run in a fresh process"
        )
    todo = list(jobs)
    ctx = mp.get_context("fork")
    results: list[Any] = [None] * len(todo)
    running: dict[Any, tuple[int, Any]] = {}  # the pipe's reading end -> (job, process)
    started = finished = 0
    try:
        while finished < len(todo):
            while started < len(todo) and len(running) < max(1, workers):
                reader, writer = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_child, args=(fn, todo[started], writer), daemon=True)
                proc.start()
                writer.close()
                running[reader] = (started, proc)
                started += 1
            for ready in wait(list(running)):
                index, proc = running.pop(ready)
                conn = cast(Connection, ready)
                ok: bool
                value: Any
                try:
                    ok, value = conn.recv()
                except EOFError:
                    proc.join()
                    ok, value = False, RuntimeError(f"job {index} died (exit code {proc.exitcode})")
                conn.close()
                proc.join()
                if not ok:
                    raise value
                results[index] = value
                finished += 1
                if progress is not None:
                    progress(finished, len(todo))
    finally:
        for reader, (_, proc) in running.items():
            proc.terminate()
            proc.join()
            reader.close()
    return results


def _child(fn: Callable[[Any], Any], job: Any, writer: Any) -> None:
    """A job's process: its result, or its exception, back through ``writer``."""
    default_signals()
    try:
        reply: tuple[bool, Any] = (True, fn(job))
    except BaseException as exc:  # handed to the parent, which raises it
        reply = (False, exc)
    try:
        writer.send(reply)
    except Exception as exc:  # an unpicklable result or exception
        writer.send((False, RuntimeError(f"job result could not be sent back: {exc!r}")))
    finally:
        writer.close()
