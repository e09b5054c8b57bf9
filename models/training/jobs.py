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
from typing import TypeVar

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
    (at least one). ``fn`` must be a module-level function; ``progress(done, total)``."""
    from headcast.models.training.synth import espeak_started

    if espeak_started():
        log.warning(
            "libespeak-ng already ran in this process; jobs forked from it start from its "
            "state, so their audio may differ from a run in a fresh process"
        )
    todo = list(jobs)
    ctx = mp.get_context("fork")
    out: list[R] = []
    with ctx.Pool(max(1, workers), initializer=default_signals, maxtasksperchild=1) as pool:
        for done, result in enumerate(pool.imap(fn, todo, chunksize=1), 1):
            out.append(result)
            if progress is not None:
                progress(done, len(todo))
    return out
