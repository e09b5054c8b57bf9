"""The server's state: settings, workers, loaded models, live sessions and jobs.

One :class:`AppState` per app, on ``app.state.headcast`` (see :func:`get_state`); it
loads renderers and motion models on demand and creates, admits and closes sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from headcast.models.channels import zeros
from headcast.models.mixer import MotionMixer
from headcast.models.model_cache import ModelCache
from headcast.models.onnx_session import cuda_available
from headcast.models.render.pool import RendererPool
from headcast.server.live.avatar_dir import DEFAULT_AVATAR, avatar_names, avatar_source
from headcast.server.live.clock import output_delay_frames, output_delay_s
from headcast.server.live.encoders import measure_encode_cost, use_speech_encoders
from headcast.server.live.ice import quiet_closed_connects, restrict_host_addresses
from headcast.server.live.loaders import (
    LipsLoader,
    MotionLoader,
    RendererFactory,
    default_lips_loader,
    default_lips_streamer,
    default_motion_loader,
    default_renderer_factory,
    default_streamer,
    measure_render,
)
from headcast.server.live.output import PipelineOutput
from headcast.server.live.pipeline_spec import PipelineSpec, build_pipeline
from headcast.server.live.process_tuning import fix_mmap_threshold, limit_blas_threads
from headcast.server.live.procpool import ProcessPool, RemotePipeline, default_processes
from headcast.server.live.scheduler import Scheduler
from headcast.server.live.session import Session, SessionParams
from headcast.server.live.speaker import Speaker
from headcast.server.live.tracks import audio_read_ahead, use_fast_audio_level
from headcast.server.metrics import Metrics
from headcast.server.settings import ServerSettings

log = logging.getLogger(__name__)

REAP_EVERY_S = 1.0  # how often idle sessions are looked for (cheap: a pass over a dict)
LOAD_EVERY_S = 2.0  # how often the process CPU is folded into admission costs
# Up to this many cores the video tracks encode on the event loop: a hand-off to a thread
# costs more than a small frame's encode. Beyond, the loop (one core) would cap the
# sessions a machine serves; libvpx runs without the interpreter lock on the threads.
ENCODE_ON_LOOP_MAX_CORES = 4


class UnsupportedSession(ValueError):
    """Session parameters the configured models cannot serve (the message says why)."""


class AppState:
    """Everything the server holds: settings, workers, models, sessions, jobs."""

    def __init__(
        self,
        settings: ServerSettings,
        *,
        renderer_factory: RendererFactory | None = None,
        motion_loader: MotionLoader | None = None,
        streamer_factory: Callable[[Any], Any] | None = None,
        lips_loader: LipsLoader | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.speaker = Speaker(settings)  # text to speech for sessions' say
        # pipelines can run in worker processes only when built from the settings alone
        self._default_factories = not (
            renderer_factory or motion_loader or streamer_factory or lips_loader
        )
        self.processes: ProcessPool | None = None
        self.renderer_factory = renderer_factory or default_renderer_factory(settings)
        self.motion_loader = motion_loader or default_motion_loader(settings)
        self.streamer_factory = streamer_factory or default_streamer
        #: the renderer's own mouth model (edtalk: Audio2Lip), loaded once; None: not used
        self.lips_loader = lips_loader or default_lips_loader(settings)
        self.lips_model: Any = None
        self.scheduler: Scheduler | None = None
        self.sessions: dict[str, Session] = {}
        #: motion models per fps and a renderer pool per (avatar name, size)
        self.models = ModelCache(
            self.motion_loader,
            lambda avatar, size: self.renderer_factory(self.avatar_source(avatar), size),
        )
        self.jobs: dict[str, Any] = {}
        self.ready = False
        self.started = time.monotonic()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._renders_seen: dict[str, tuple[int, int]] = {}  # session: (frames, late renders)

    # ---- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        restrict_host_addresses(s.ice_host_addresses)
        quiet_closed_connects(asyncio.get_running_loop())
        use_fast_audio_level()
        use_speech_encoders()
        limit_blas_threads(1)
        fix_mmap_threshold()
        batch = s.provider == "cuda" or (s.provider == "auto" and cuda_available())
        cores = len(os.sched_getaffinity(0))
        encode_off_loop = s.video_encode == "threads" or (
            s.video_encode == "auto" and cores > ENCODE_ON_LOOP_MAX_CORES
        )
        procs = s.render_processes if s.render_processes >= 0 else default_processes(cores)
        workers = s.render_workers
        warp = s.renderer_backend == "warp" or (s.renderer_backend == "auto" and not batch)
        if procs and not batch and warp and self._default_factories:
            self.processes = ProcessPool(procs, s)
            # threads only wait on the processes' pipes here: enough that none starves
            workers = max(workers, 2 * procs + 2)
        self.scheduler = Scheduler(
            workers,
            batch=batch,
            headroom=s.admission_headroom,
            max_sessions=s.max_sessions,
        )
        self.scheduler.encode_off_loop = encode_off_loop
        self.scheduler.check_interpreter = s.admit_by_server_process
        self.scheduler.render_in_process = self.processes is None
        loop = asyncio.get_running_loop()
        if s.encoder_threads:
            # aiortc encodes on the loop's default executor: a few threads, not one per
            # call in flight, so encoders do not crowd each other off the cores
            loop.set_default_executor(
                ThreadPoolExecutor(s.encoder_threads, thread_name_prefix="headcast-encoder")
            )
        self._tasks.add(loop.create_task(self._reap_idle(), name="reaper"))
        self._tasks.add(loop.create_task(self._observe_load(), name="load"))

    async def warm_up(self) -> None:
        """Load the default avatar and motion model and measure per-frame costs."""
        sched = self.require_scheduler()
        await self.motion_model(self.settings.default_fps)
        await self.lips()
        for size in sorted({self.settings.default_size, *self.settings.allowed_sizes}):
            pool = await self.renderer_pool(DEFAULT_AVATAR, size)
            cost = await sched.run(measure_render, pool)
            sched.record_tick(size, cost)
            sched.encode_cost[size] = await sched.run(measure_encode_cost, size)
        from headcast.server.live.tracks import encoder_hold_chunks

        await sched.run(encoder_hold_chunks)  # probe aiortc's Opus encoder off the event loop
        if self.processes is not None:
            source = self.avatar_source(DEFAULT_AVATAR)
            sizes = sorted({self.settings.default_size, *self.settings.allowed_sizes})
            fps = self.settings.default_fps
            await asyncio.gather(
                *(
                    sched.run(w.call, "warm", _spec_avatar(source), sizes, fps)
                    for w in self.processes.workers
                )
            )
        self.ready = True
        log.info(
            "ready: per-frame cost %s",
            {s: round(sched.frame_cost(s) * 1e3, 2) for s in sched.tick_cost},
        )

    def track_task(self, task: asyncio.Task[Any]) -> None:
        """A background task that stop() cancels (and waits for)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        self.ready = False
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.speaker.close()
        for sid in list(self.sessions):
            await self.close_session(sid)
        if self.scheduler is not None:
            self.scheduler.close()
            self.scheduler = None
        if self.processes is not None:
            self.processes.close()
            self.processes = None

    @property
    def encode_off_loop(self) -> bool:
        """Whether the video tracks hand their encodes to threads (``video_encode``)."""
        return self.scheduler is not None and self.scheduler.encode_off_loop

    def require_scheduler(self) -> Scheduler:
        if self.scheduler is None:
            raise RuntimeError("the app has not started")
        return self.scheduler

    async def _observe_load(self) -> None:
        while True:
            await asyncio.sleep(LOAD_EVERY_S)
            # start-up (loading, calibrating) is not what the server costs idle
            if self.scheduler is not None and self.ready:
                own, now = time.process_time(), time.monotonic()
                cpu = own
                if self.processes is not None:
                    cpu += self.processes.cpu_seconds()
                self.scheduler.observe_process_cpu(cpu, now)
                self.scheduler.observe_interpreter_cpu(own, now)
                self._observe_renders(self.scheduler)

    def _observe_renders(self, sched: Scheduler) -> None:
        """Frames made and renders late since the last look, over the sessions with viewers."""
        seen = {
            sid: (s.pipeline.next_frame, s.pipeline.skipped_renders)
            for sid, s in self.sessions.items()
            if s.pipeline.render_video
        }
        frames = late = 0
        for sid, (made, skipped) in seen.items():
            made0, skipped0 = self._renders_seen.get(sid, (made, skipped))
            frames += max(0, made - made0)  # an early onset takes frames back
            late += max(0, skipped - skipped0)
        self._renders_seen = seen
        sched.observe_renders(frames, late)

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(REAP_EVERY_S)
            for sid in self.idle_sessions(time.monotonic()):
                log.info("closing idle session %s", sid)
                await self.close_session(sid)

    def idle_sessions(self, now: float) -> list[str]:
        """Sessions with no viewer and no socket for their timeout, counted from the
        last activity: speech, a viewer or socket joining, or the last one leaving. A
        session whose viewers have all left (a closed tab) gets the short
        ``viewer_gone_timeout_s``: time for that page to come back, not for a new one."""
        s = self.settings
        idle = []
        for sid, sess in self.sessions.items():
            limit = s.idle_session_timeout_s if sess.claimed else s.unclaimed_session_timeout_s
            if sess.viewers_left:
                limit = min(limit, s.viewer_gone_timeout_s)
            if not sess.peers and not sess.streams and now - sess.last_activity > limit:
                idle.append(sid)
        return idle

    # ---- models -----------------------------------------------------------------------

    def avatar_source(self, name: str) -> str | Path | None:
        return avatar_source(name, self.settings.avatar, self.settings.avatars_dir)

    def avatar_names(self) -> list[str]:
        return avatar_names(self.settings.avatars_dir)

    async def renderer_pool(self, avatar: str, size: int) -> RendererPool:
        sched = self.require_scheduler()
        return await sched.run(self.models.pool, avatar, size, sched.workers)

    async def motion_model(self, fps: int) -> Any:
        return await self.require_scheduler().run(self.models.motion, fps)

    async def lips(self) -> Any:
        """The renderer's own mouth model (e.g. an Audio2Lip runner), or None."""
        if self.lips_model is None and self.lips_loader is not None:
            self.lips_model = await self.require_scheduler().run(self.lips_loader)
        return self.lips_model

    # ---- sessions ---------------------------------------------------------------------

    async def create_session(self, params: SessionParams, owner: str | None = None) -> Session:
        """Build and admit a session for ``owner`` (a session token's identity, None for
        the API key or no auth); raises UnknownAvatar, KeyError (emotion),
        UnsupportedSession, AdmissionError."""
        sched = self.require_scheduler()
        MotionMixer(params.fps, seed=params.seed, emotion=params.emotion)  # validates emotion
        lips = await self.lips()
        if lips is not None and params.fps != lips.fps:
            raise UnsupportedSession(
                f"the {self.settings.renderer_backend} backend runs at {lips.fps} fps, "
                f"got fps={params.fps}"
            )
        pool = await self.renderer_pool(params.avatar, params.size)
        model = await self.motion_model(params.fps)
        # lookahead_s: audio past a frame's time needed before it is final (mel window incl.)
        right_context = float(getattr(model, "lookahead_s", 0.0))
        lip_streamer = None
        if lips is not None:
            # The frame waits for both mouth sources: the later one sets the delay.
            lip_streamer = await sched.run(default_lips_streamer, lips)
            right_context = max(right_context, float(lip_streamer.lookahead_s))
        margin = self.settings.render_margin_ms / 1000.0
        delay = output_delay_frames(right_context, margin, params.fps)
        budget = self.settings.render_budget_ms / 1000.0
        delay_s = output_delay_s(right_context, budget, margin, params.fps)
        idle = await sched.run(pool.render, zeros())
        render = sched.render_fn(pool)
        read_ahead = await sched.run(audio_read_ahead)  # probes the encoder once, off the loop

        procs = self.processes
        avatar = _spec_avatar(self.avatar_source(params.avatar))
        worker = None
        if procs is not None:
            # load the avatar and model there now, not on the session's first tick
            worker = procs.pick()
            try:
                await sched.run(worker.call, "warm", avatar, [params.size], params.fps)
            except Exception:
                procs.release(worker)
                raise
        # the streaming motion model runs in the pipeline's own process
        streamer: Any = None
        if worker is None:
            streamer = await sched.run(self.streamer_factory, model)

        def make_pipeline(clock: Any) -> PipelineOutput:
            spec = PipelineSpec(
                avatar=avatar,
                size=params.size,
                fps=params.fps,
                seed=params.seed,
                emotion=params.emotion,
                clock=clock,
                max_buffered_s=self.settings.max_buffered_audio_s,
                echo_audio=params.input != "mirror",
                early_onsets=self.settings.early_onsets,
                read_ahead=read_ahead,
                drain_above_s=self.settings.drain_backlog_above_ms / 1000.0,
            )
            if worker is not None:
                return RemotePipeline(worker, spec)
            return build_pipeline(
                spec,
                streamer=streamer,
                render=render,
                lips=lip_streamer,
            )

        async with self._lock:
            session = Session(
                params,
                pipeline_factory=make_pipeline,
                delay_frames=delay,
                delay_s=delay_s,
                idle_image=idle,
                run=sched.run,
                on_cost=lambda c, n: sched.record_tick(params.size, c, n),
                phase=0.0 if worker is None else worker.phase,
                owner=owner,
                connect_timeout_s=self.settings.viewer_connect_timeout_s,
            )
            session.pipeline.render_video = False
            try:
                sched.admit(session.id, params.size, params.fps)
            except Exception:
                await session.close()
                raise
            self.sessions[session.id] = session
        self.metrics.sessions_created += 1
        return session

    async def close_session(self, sid: str, deleted: bool = False) -> bool:
        """Close and forget session ``sid`` (False if there is none); ``deleted``: a client
        asked for it through the API, so its socket is told that the close is final."""
        session = self.sessions.pop(sid, None)
        if session is None:
            return False
        session.deleted = session.deleted or deleted
        await session.close()
        if self.scheduler is not None:
            self.scheduler.release(sid)
        self.metrics.sessions_closed += 1
        return True


def _spec_avatar(source: str | Path | None) -> str | None:
    return None if source is None else str(source)


def get_state(request: Any) -> AppState:
    """The :class:`AppState` of the app serving ``request`` (HTTP or WebSocket)."""
    state: AppState = request.app.state.headcast
    return state
