"""server/live/admission.py (through the Scheduler that holds it): what the measured
costs can serve, sessions missing frames, the server process's own core."""

from __future__ import annotations

import pytest

from headcast.server.live.admission import AdmissionError
from headcast.server.live.scheduler import Scheduler


def measured(max_sessions: int) -> Scheduler:
    """Two cores, half of them for sessions, no fixed overheads; a 256 frame measured at
    4 ms to render and 1 ms to encode."""
    sched = Scheduler(
        workers=1,
        headroom=0.5,
        max_sessions=max_sessions,
        cores=2,
        overhead_s=0.0,
        interpreter_s=0.0,
    )
    sched.record_tick(256, 0.004)
    sched.encode_cost[256] = 0.001
    return sched


def test_admission_refuses_what_the_measured_cost_cannot_serve() -> None:
    sched = measured(max_sessions=10)
    try:
        # 1 core of capacity / (25 fps * 5 ms) = 8 sessions
        for i in range(8):
            sched.admit(f"s{i}", 256, 25)
        with pytest.raises(AdmissionError, match="needs"):
            sched.admit("s8", 256, 25)
        # 512 is estimated from 256 by pixel count until measured
        assert sched.frame_cost(512) == pytest.approx(0.016)
        sched.release("s0")
        sched.admit("s8", 256, 25)
        sched.max_sessions = 8
        with pytest.raises(AdmissionError, match="limit"):
            sched.admit("s9", 256, 10)
    finally:
        sched.close()


def test_admission_counts_the_process_cpu_per_frame_costs_leave_out() -> None:
    sched = measured(max_sessions=20)
    try:
        t, cpu = 100.0, 10.0
        sched.observe_process_cpu(cpu, t)  # first sample: a baseline, nothing to compare
        # idle: 0.1 cores with nothing rendered
        for _ in range(20):
            t, cpu = t + 2.0, cpu + 0.2
            sched.observe_process_cpu(cpu, t)
        assert sched.idle_cores == pytest.approx(0.1, abs=1e-4) and sched.overhead_s == 0.0
        # 100 frames in 2 s account for 0.5 s of CPU, idle for 0.2 s, but 1.2 s went:
        # 5 ms a frame more
        sched.record_tick(256, 0.004, frames=100)
        t, cpu = t + 2.0, cpu + 1.2
        sched.observe_process_cpu(cpu, t)
        assert sched.overhead_s == pytest.approx(0.0015, abs=1e-5)  # moving towards 5 ms
        for _ in range(20):
            sched.record_tick(256, 0.004, frames=100)
            t, cpu = t + 2.0, cpu + 1.2
            sched.observe_process_cpu(cpu, t)
        assert sched.overhead_s == pytest.approx(0.005, abs=1e-5)
        assert sched.idle_cores == pytest.approx(0.1, abs=1e-4)  # unchanged while busy
        assert sched.frame_cost(256) == pytest.approx(0.010, rel=1e-3)
        # a fixed cost per frame, not a factor: 512 costs its own render plus the same 5 ms
        assert sched.frame_cost(512) == pytest.approx(0.016 + 0.005, rel=1e-3)
        # (1 core of capacity - 0.1 idle) / (25 fps * 10 ms) = 3.6: 3 sessions, not the 7
        # of the bare costs
        for i in range(3):
            sched.admit(f"s{i}", 256, 25)
        with pytest.raises(AdmissionError, match="needs"):
            sched.admit("s3", 256, 25)
        assert sched.demand() == pytest.approx(0.1 + 3 * 0.25, rel=1e-3)
        # admitted sessions nobody watches yet tick without making frames: their CPU is
        # already reserved, so it must not be learnt as idle as well
        for _ in range(20):
            t, cpu = t + 2.0, cpu + 0.6
            sched.observe_process_cpu(cpu, t)
        assert sched.idle_cores == pytest.approx(0.1, abs=1e-4)
    finally:
        sched.close()


def test_a_fresh_server_judges_a_burst_by_the_prior_overhead() -> None:
    """Before anything is measured, sessions opened at once are not counted as costing
    only their render and encode."""
    sched = Scheduler(workers=1, headroom=0.75, max_sessions=16, cores=2)
    try:
        sched.record_tick(256, 0.0017)  # what start-up calibration measures here
        sched.encode_cost[256] = 0.0003
        admitted = 0
        with pytest.raises(AdmissionError, match="needs"):
            for i in range(16):
                sched.admit(f"s{i}", 256, 25)
                admitted += 1
        assert 6 <= admitted <= 10  # not 16 (zero overhead would let in 30)
    finally:
        sched.close()


def test_admission_refuses_while_sessions_miss_frames() -> None:
    """Whatever the cost estimates say, nobody new gets in while the running sessions'
    renders miss their send times; admission opens again once they keep up."""
    sched = Scheduler(workers=1, headroom=0.9, max_sessions=20, cores=2)
    try:
        sched.record_tick(256, 0.002)
        sched.admit("a", 256, 25)
        sched.observe_renders(frames=10, late=10)  # too few frames to judge
        sched.admit("b", 256, 25)
        sched.observe_renders(frames=200, late=20)  # 10 % late
        with pytest.raises(AdmissionError, match="miss frames"):
            sched.admit("c", 256, 25)
        for _ in range(8):  # idle: the evidence fades
            sched.observe_renders(frames=0, late=0)
        sched.admit("c", 256, 25)
        sched.release("c")
        sched.observe_renders(frames=200, late=20)  # 10 % late
        with pytest.raises(AdmissionError, match="miss frames"):
            sched.admit("c", 256, 25)
        for _ in range(8):  # keeping up again
            sched.observe_renders(frames=200, late=0)
        sched.admit("c", 256, 25)
        assert set(sched.load) == {"a", "b", "c"}
        # Once every session that missed frames has ended, the next one gets in at once.
        sched.observe_renders(frames=200, late=100)
        for sid in ("a", "b", "c"):
            sched.release(sid)
        sched.admit("d", 256, 25)
        assert set(sched.load) == {"d"}
    finally:
        sched.close()


def test_admission_keeps_the_server_process_within_its_one_core() -> None:
    """However many cores the machine has, the server process's interpreter-bound work
    fits in one: admission measures that work per frame and refuses beyond the headroom
    of one core, while the cores' budget would still take more."""
    sched = Scheduler(workers=1, headroom=0.8, max_sessions=64, cores=16, overhead_s=0.0)
    try:
        sched.record_tick(512, 0.004)
        sched.encode_cost[512] = 0.003
        sched.encode_off_loop = True
        clock = [100.0, 5.0]  # wall and CPU seconds

        def observe(steps: int, cpu_s: float, frames: int) -> None:
            """``steps`` looks 2 s apart, each after ``frames`` frames and ``cpu_s`` of CPU."""
            for _ in range(steps):
                sched.frames_made[512] = sched.frames_made.get(512, 0) + frames
                clock[0] += 2.0
                clock[1] += cpu_s
                sched.observe_interpreter_cpu(clock[1], clock[0])

        sched.observe_interpreter_cpu(clock[1], clock[0])  # baseline
        observe(10, 0.1, 0)  # idle: 0.05 of a core
        assert sched.interpreter_idle == pytest.approx(0.05, abs=0.005)
        # 4 sessions x 25 fps for 2 s: 200 frames; the process spent 1.5 s, of which the
        # off-loop encodes were 200 x 3 ms = 0.6 s and idle 0.1 s: 4 ms a frame remain
        observe(12, 1.5, 200)
        assert sched.interpreter_s == pytest.approx(0.004, rel=0.02)
        # one session needs 25 x 4 ms = 0.1 of the core: (0.8 - 0.05) / 0.1 -> 7 sessions,
        # though 16 cores x 0.8 / (25 x 7 ms) would take 73
        admitted = 0
        with pytest.raises(AdmissionError, match="server process is busy"):
            for i in range(64):
                sched.admit(f"s{i}", 512, 25)
                admitted += 1
        assert admitted == 7
        # encodes on the event loop are its work: the same CPU is 3 + 4 ms a frame
        sched.encode_off_loop = False
        observe(12, 1.5, 200)
        assert sched.interpreter_s == pytest.approx(0.007, rel=0.02)
        # renders on this process's threads (no render processes) run outside the lock
        # too: of the same CPU, 200 x 4 ms of ticks are theirs, 3 ms a frame remain
        sched.render_in_process = True
        observe(20, 1.5, 200)
        assert sched.interpreter_s == pytest.approx(0.003, rel=0.02)
    finally:
        sched.close()
