"""Admission control: which sessions the machine can serve at their frame rate.

Each session costs ``fps x (tick work + video encode)`` seconds of CPU per second,
measured as sessions run (calibrated at start-up); a new session is admitted only if
the total stays under ``cores x headroom``, and the server process's own
interpreter-bound work per frame under ``headroom`` of one core, and while the running
sessions do not miss frames. Otherwise :class:`AdmissionError` with the numbers (503).
"""

from __future__ import annotations

import os
import time
from typing import TypedDict

#: (cumulative CPU seconds, monotonic time, frames made per size so far)
CpuSample = tuple[float, float, dict[int, int]]

COST_EMA = 0.05  # weight of a new per-frame cost sample
DEFAULT_COST_S = 0.008  # per-frame CPU seconds assumed before anything is measured
OVERHEAD_EMA = 0.3  # weight of a new per-frame overhead sample
MAX_OVERHEAD_S = 0.05  # per-frame overhead beyond which a sample is not believed
#: the per-frame overhead assumed before any is measured: about what the 2-core
#: development machine measures with render processes (4-8 ms a frame at either size),
#: so a burst of sessions opened on a fresh server is judged by realistic costs (counted
#: as zero, a burst of sixteen 256 sessions was let in on 2 cores)
PRIOR_OVERHEAD_S = 0.005
#: the server process's own CPU per frame assumed before any is measured (its Python
#: work is bound to one core by the interpreter lock): the 2-core development machine
#: measures about 3.5 ms a frame at 256 with eight sessions
PRIOR_INTERPRETER_S = 0.0035
MAX_INTERPRETER_S = 0.05  # per-frame interpreter share beyond which a sample is not believed
MIN_ACCOUNTED_S = 0.05  # accounted CPU a load sample needs before it counts
LATE_LIMIT = 0.02  # share of renders missing their send time above which nobody new gets in
LATE_EMA = 0.5  # weight of a new late-render sample (one per load observation, ~2 s)
MIN_FRAMES_SAMPLE = 25  # frames a late-render sample needs before it counts


class AdmissionError(RuntimeError):
    """A session that cannot be served at its frame rate; the message says why."""


class AdmissionLimits(TypedDict, total=False):
    """What :class:`Admission` is told (the scheduler passes these on)."""

    headroom: float
    max_sessions: int
    cores: int | None
    overhead_s: float
    interpreter_s: float


class Admission:
    """Measured costs and the sessions admitted against them."""

    def __init__(
        self,
        *,
        headroom: float = 0.8,
        max_sessions: int = 16,
        cores: int | None = None,
        overhead_s: float = PRIOR_OVERHEAD_S,
        interpreter_s: float = PRIOR_INTERPRETER_S,
    ) -> None:
        self.cores = cores or len(os.sched_getaffinity(0))
        self.headroom = headroom
        self.max_sessions = max_sessions
        #: measured CPU seconds per frame: tick work by size, video encode by size
        self.tick_cost: dict[int, float] = {}
        self.encode_cost: dict[int, float] = {}
        #: CPU seconds per frame the tick and encode costs leave out, whatever the size:
        #: the event loop, RTP and SRTP, the Opus encoder, replies from the render
        #: processes (measured; until then ``overhead_s``)
        self.overhead_s = overhead_s
        self.frames_made: dict[int, int] = {}  # ticks recorded per size, cumulative
        self._seen: CpuSample | None = None
        self.idle_cores = 0.0  # what the server process(es) use with nothing to render
        #: the server process's own CPU per frame under its interpreter lock (event loop,
        #: RTP and SRTP, replies from render processes), and with nothing to render: it
        #: has one core however many the machine has (measured; until then a prior)
        self.interpreter_s = interpreter_s
        self.check_interpreter = True  # admission also weighs the interpreter's load
        self.interpreter_idle = 0.0
        #: video encodes run on executor threads, outside the interpreter lock
        self.encode_off_loop = False
        #: frames render on this process's threads (no render processes): their tick is
        #: mostly native code (ONNX Runtime, cv2) that runs outside the interpreter lock
        self.render_in_process = False
        self._seen_main: CpuSample | None = None
        #: share of recent renders that missed their send time, all sessions (measured)
        self.late_fraction = 0.0
        #: admitted sessions: id -> (size, fps)
        self.load: dict[str, tuple[int, int]] = {}

    def frame_cost(self, size: int) -> float:
        """Estimated CPU seconds per frame of a session at ``size``, all overheads in."""
        return self.base_cost(size) + self.overhead_s

    def base_cost(self, size: int) -> float:
        """Tick work plus video encode per frame at ``size`` (measured directly)."""
        known = [s for s in self.tick_cost if s > 0]
        tick = self.tick_cost.get(size)
        if tick is None and known:  # scale the nearest measured size by pixel count
            ref = min(known, key=lambda s: abs(s - size))
            tick = self.tick_cost[ref] * (size / ref) ** 2
        return (tick or DEFAULT_COST_S) + self.encode_cost.get(size, 0.0)

    def record_tick(self, size: int, seconds_per_frame: float, frames: int = 1) -> None:
        old = self.tick_cost.get(size)
        self.tick_cost[size] = (
            seconds_per_frame if old is None else old + COST_EMA * (seconds_per_frame - old)
        )
        self.frames_made[size] = self.frames_made.get(size, 0) + frames

    def observe_process_cpu(self, cpu_s: float, now: float | None = None) -> None:
        """Fold in the process's CPU time (cumulative, all threads) since the last call.

        With nothing rendered, the CPU rate is what the server costs idle
        (``idle_cores``). Otherwise what is left after that and after the recorded
        frames' ``base_cost`` becomes ``overhead_s``, per frame: a fixed cost per frame
        rather than a factor on the measured ones, as it is mostly per packet and per
        call (measured on the development machine: about 5 ms a frame at 256 and at 512,
        where a factor came to 3.5 and 2).
        """
        delta, self._seen = self._since(self._seen, cpu_s, now)
        if delta is None:
            return
        made, spent, dt = delta
        accounted = sum(n * self.base_cost(size) for size, n in made.items())
        count = sum(made.values())
        if count == 0 and dt > 0:
            # Idle only when no session is admitted: sessions nobody watches yet still
            # tick (motion) without making frames, and admission already reserves them.
            if not self.load:
                self.idle_cores += OVERHEAD_EMA * (max(spent / dt, 0.0) - self.idle_cores)
        elif accounted >= MIN_ACCOUNTED_S:
            extra = (spent - self.idle_cores * dt - accounted) / count
            extra = min(max(extra, 0.0), MAX_OVERHEAD_S)
            self.overhead_s += OVERHEAD_EMA * (extra - self.overhead_s)

    def observe_interpreter_cpu(self, cpu_s: float, now: float | None = None) -> None:
        """Fold in the server process's own CPU time (cumulative, all its threads).

        Its Python code runs under one interpreter lock, so however many cores the
        machine has, that work fits in one: measured on a 16-core machine, the server
        stopped keeping up at about one core of it while the other cores idled. The
        encodes on executor threads run outside the lock and are left out
        (``encode_off_loop``); so are renders, whether in render processes, which have
        their own, or on this process's threads (``render_in_process``), where their
        native code runs outside the lock.
        """
        delta, self._seen_main = self._since(self._seen_main, cpu_s, now)
        if delta is None:
            return
        made, spent, dt = delta
        count = sum(made.values())
        if self.encode_off_loop:
            spent -= sum(n * self.encode_cost.get(size, 0.0) for size, n in made.items())
        if self.render_in_process:
            spent -= sum(n * self.tick_cost.get(size, 0.0) for size, n in made.items())
        if count == 0 and dt > 0:
            if not self.load:  # as in observe_process_cpu
                busy = max(spent / dt, 0.0)
                self.interpreter_idle += OVERHEAD_EMA * (busy - self.interpreter_idle)
        elif count >= MIN_FRAMES_SAMPLE:
            per = (spent - self.interpreter_idle * dt) / count
            per = min(max(per, 0.0), MAX_INTERPRETER_S)
            self.interpreter_s += OVERHEAD_EMA * (per - self.interpreter_s)

    def _since(
        self, seen: CpuSample | None, cpu_s: float, now: float | None
    ) -> tuple[tuple[dict[int, int], float, float] | None, CpuSample]:
        """(frames made per size, CPU seconds spent, wall seconds) since ``seen`` (None
        on the first call), and the sample to compare the next call with."""
        now = time.monotonic() if now is None else now
        sample = (cpu_s, now, dict(self.frames_made))
        if seen is None:
            return None, sample
        cpu0, t0, frames0 = seen
        made = {size: n - frames0.get(size, 0) for size, n in sample[2].items()}
        return (made, cpu_s - cpu0, now - t0), sample

    def interpreter_demand(self) -> float:
        """Share of one core the server process's interpreter-bound work needs."""
        return self.interpreter_idle + sum(
            fps * self.interpreter_s for _, fps in self.load.values()
        )

    def observe_renders(self, frames: int, late: int) -> None:
        """Fold in the frames the sessions made and how many of them were late since the
        last call: admission refuses while sessions already miss frames, whatever the
        cost estimates say (a busy machine, a cost the estimate misses)."""
        # with too few frames to judge (idle, sessions just started) the evidence fades
        sample = min(max(late / frames, 0.0), 1.0) if frames >= MIN_FRAMES_SAMPLE else 0.0
        self.late_fraction += LATE_EMA * (sample - self.late_fraction)

    def demand(self) -> float:
        """Cores the server needs: idle, plus what the admitted sessions need."""
        return self.idle_cores + sum(
            fps * self.frame_cost(size) for size, fps in self.load.values()
        )

    def capacity(self) -> float:
        return self.cores * self.headroom

    def admit(self, session_id: str, size: int, fps: int) -> None:
        """Reserve room for a session or raise :class:`AdmissionError` with the reason."""
        if len(self.load) >= self.max_sessions:
            raise AdmissionError(f"session limit reached ({self.max_sessions} sessions)")
        # (late renders of sessions that have all ended protect nobody)
        if self.load and self.late_fraction > LATE_LIMIT:
            raise AdmissionError(
                f"the sessions already running miss frames ({100 * self.late_fraction:.1f} % "
                "of renders late lately); try again when the load is lower"
            )
        need = fps * self.frame_cost(size)
        have = self.capacity() - self.demand()
        if need > have:
            raise AdmissionError(
                f"not enough render capacity: a {size}x{size} session at {fps} fps needs "
                f"{need:.2f} cores, {max(have, 0.0):.2f} of {self.capacity():.2f} are free"
            )
        need = fps * self.interpreter_s
        have = self.headroom - self.interpreter_demand()
        if self.check_interpreter and need > have:
            raise AdmissionError(
                f"the server process is busy: a session needs {need:.2f} of its one core "
                f"(event loop, RTP, encoder hand-offs), {max(have, 0.0):.2f} of "
                f"{self.headroom:.2f} are free"
            )
        self.load[session_id] = (size, fps)

    def release(self, session_id: str) -> None:
        self.load.pop(session_id, None)
