"""``/healthz`` (the process answers), ``/readyz`` (models loaded), ``/metrics`` (Prometheus)."""

from __future__ import annotations

import math

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from headcast.server.metrics import CONTENT_TYPE, Family, quantile, render
from headcast.server.state import get_state

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    state = get_state(request)
    if not state.ready:
        return JSONResponse({"status": "starting"}, status_code=503)
    sched = state.require_scheduler()
    return JSONResponse(
        {
            "status": "ready",
            "sessions": len(state.sessions),
            "load_cores": round(sched.demand(), 3),
            "capacity_cores": round(sched.capacity(), 3),
        }
    )


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    state = get_state(request)
    m = state.metrics
    sched = state.scheduler
    fams = [
        Family("headcast_sessions", "live sessions").add(len(state.sessions)),
        Family("headcast_viewers", "connected or connecting WebRTC viewers").add(
            sum(len(sess.peers) for sess in state.sessions.values())
        ),
        Family("headcast_sessions_created_total", "sessions admitted", "counter").add(
            m.sessions_created
        ),
        Family("headcast_sessions_refused_total", "sessions refused (503)", "counter").add(
            m.sessions_refused
        ),
        Family("headcast_sessions_closed_total", "sessions closed", "counter").add(
            m.sessions_closed
        ),
        Family("headcast_peers_total", "WebRTC peers created", "counter").add(m.peers_created),
        Family("headcast_bad_requests_total", "4xx responses", "counter").add(m.bad_requests),
        Family("headcast_interrupts_total", "interrupts handled", "counter").add(m.interrupts),
    ]
    if sched is not None:
        fams.append(
            Family("headcast_load_cores", "cores admitted sessions need").add(sched.demand())
        )
        fams.append(
            Family("headcast_capacity_cores", "cores admission may fill").add(sched.capacity())
        )
        fams.append(
            Family(
                "headcast_cpu_overhead_seconds_per_frame",
                "process CPU per frame beyond the tick and encode costs (measured)",
            ).add(sched.overhead_s)
        )
        fams.append(
            Family(
                "headcast_interpreter_seconds_per_frame",
                "server-process CPU per frame under its interpreter lock (measured)",
            ).add(sched.interpreter_s)
        )
        fams.append(
            Family(
                "headcast_late_render_fraction", "recent renders that missed their send time"
            ).add(sched.late_fraction)
        )
    fps = Family("headcast_session_fps", "video frames sent per second")
    render_ms = Family("headcast_render_ms", "render time per frame (ms)", "summary")
    queue = Family("headcast_input_buffer_ms", "speech queued for playback (ms)")
    frames = Family("headcast_output_frames", "rendered frames waiting to be sent")
    dropped = Family("headcast_dropped_frames_total", "frames repeated or skipped", "counter")
    late = Family("headcast_motion_late_frames_total", "frames made without motion", "counter")
    drained = Family(
        "headcast_drained_pause_ms_total", "pause skipped to drain a live backlog (ms)", "counter"
    )
    av = Family("headcast_av_offset_ms", "send-time offset video minus audio (ms)")
    first = Family("headcast_first_frame_ms", "first video frame after a viewer joined (ms)")
    for sid, sess in state.sessions.items():
        p = sess.pipeline
        fps.add(sess.achieved_fps(), session=sid)
        samples = [s * 1e3 for s in list(p.render_s)]
        for q in (0.5, 0.95):
            render_ms.add(quantile(samples, q), session=sid, quantile=str(q))
        queue.add(p.buffered() / 16.0, session=sid)
        frames.add(max(0, p.next_frame - 1 - sess.clock.output_frame()), session=sid)
        dropped.add(sess.dropped_frames(), session=sid)
        late.add(p.motion_late, session=sid)
        drained.add(p.drained_samples / 16.0, session=sid)
        offset = sess.av_offset_ms()
        if not math.isnan(offset):
            av.add(offset, session=sid)
        if sess.first_frame_s is not None:
            first.add(sess.first_frame_s * 1e3, session=sid)
    fams += [fps, render_ms, queue, frames, dropped, late, drained, av, first]
    return PlainTextResponse(render(fams), media_type=CONTENT_TYPE)
