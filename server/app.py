"""The FastAPI application: state on the app, routers discovered from a list.

``create_app(settings)`` builds everything; nothing lives in module globals. Routers
are modules exposing ``router`` (an ``APIRouter``), listed in :data:`ROUTER_MODULES`;
optional ones (e.g. ``server.renders`` for offline jobs) are included when present.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware

from models.channels import zeros
from models.mixer import MotionMixer
from models.onnx_session import cuda_available
from server.clock import output_delay_frames
from server.ice import restrict_host_addresses
from server.metrics import Metrics
from server.pipeline import SessionPipeline
from server.scheduler import RendererPool, Scheduler, limit_blas_threads, measure_encode_cost
from server.session import Session, SessionParams
from server.settings import ServerSettings

log = logging.getLogger(__name__)

#: (module, required). Each module exposes ``router``; add a line to add an API.
ROUTER_MODULES: tuple[tuple[str, bool], ...] = (
    ("server.health", True),
    ("server.sessions", True),
    ("server.whep", True),
    ("server.ws", True),
    ("server.avatars", True),
    ("server.renders", False),
    ("server.auth", False),
    ("server.static", False),
)
DEFAULT_AVATAR = "default"
AVATAR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
REAP_EVERY_S = 5.0
CALIBRATION_FRAMES = 8

RendererFactory = Callable[[str | Path | None, int], Any]
MotionLoader = Callable[[int], Any]
LipsLoader = Callable[[], Any]


class UnsupportedSession(ValueError):
    """Session parameters the configured models cannot serve (the message says why)."""


class UnknownAvatar(LookupError):
    """An avatar name that is neither built in nor enrolled."""


def _default_renderer_factory(settings: ServerSettings) -> RendererFactory:
    def make(avatar: str | Path | None, size: int) -> Any:
        from models.render import create_renderer

        return create_renderer(
            avatar,
            backend=settings.renderer_backend,
            size=size,
            provider=settings.provider,
            edtalk_weights=settings.edtalk_weights,
            precision=settings.edtalk_precision,
        )

    return make


def _default_lips_loader(settings: ServerSettings) -> LipsLoader | None:
    """The renderer's own mouth model: EDTalk's Audio2Lip for ``edtalk``, else none."""
    if settings.renderer_backend != "edtalk":
        return None
    weights = settings.edtalk_weights

    def load() -> Any:
        from models.edtalk import WeightsError, create_audio2lip

        if weights is None:
            raise WeightsError("the edtalk backend needs its weights folder (edtalk_weights)")
        return create_audio2lip(weights, provider=settings.provider)

    return load


def _default_lips_streamer(runner: Any) -> Any:
    from models.edtalk.stream import Audio2LipStreamer

    return Audio2LipStreamer(runner)


def _default_motion_loader(settings: ServerSettings) -> MotionLoader:
    def load(fps: int) -> Any:
        from models.motion import load_motion_model

        return load_motion_model(settings.motion_model, fps=fps, provider=settings.provider)

    return load


def _default_streamer(model: Any) -> Any:
    from models.motion import MotionStreamer

    return MotionStreamer(model)


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
        self.renderer_factory = renderer_factory or _default_renderer_factory(settings)
        self.motion_loader = motion_loader or _default_motion_loader(settings)
        self.streamer_factory = streamer_factory or _default_streamer
        #: the renderer's own mouth model (edtalk: Audio2Lip), loaded once; None: not used
        self.lips_loader = lips_loader or _default_lips_loader(settings)
        self.lips_model: Any = None
        self.scheduler: Scheduler | None = None
        self.sessions: dict[str, Session] = {}
        self.renderers: dict[tuple[str, int], RendererPool] = {}
        self.motion_models: dict[int, Any] = {}
        self.jobs: dict[str, Any] = {}
        self.ready = False
        self.started = time.monotonic()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    # ---- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        restrict_host_addresses(s.ice_host_addresses)
        limit_blas_threads(1)
        batch = s.provider == "cuda" or (s.provider == "auto" and cuda_available())
        self.scheduler = Scheduler(
            s.render_workers,
            batch=batch,
            headroom=s.admission_headroom,
            max_sessions=s.max_sessions,
        )
        task = asyncio.get_running_loop().create_task(self._reap_idle(), name="reaper")
        self._tasks.add(task)

    async def warm_up(self) -> None:
        """Load the default avatar and motion model and measure per-frame costs."""
        sched = self.require_scheduler()
        await self.motion_model(self.settings.default_fps)
        await self.lips()
        for size in sorted({self.settings.default_size, *self.settings.allowed_sizes}):
            pool = await self.renderer_pool(DEFAULT_AVATAR, size)
            cost = await sched.run(_measure_render, pool)
            sched.record_tick(size, cost)
            sched.encode_cost[size] = await sched.run(measure_encode_cost, size)
        self.ready = True
        log.info(
            "ready: per-frame cost %s",
            {s: round(sched.frame_cost(s) * 1e3, 2) for s in sched.tick_cost},
        )

    async def stop(self) -> None:
        self.ready = False
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sid in list(self.sessions):
            await self.close_session(sid)
        if self.scheduler is not None:
            self.scheduler.close()
            self.scheduler = None

    def require_scheduler(self) -> Scheduler:
        if self.scheduler is None:
            raise RuntimeError("the app has not started")
        return self.scheduler

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(REAP_EVERY_S)
            limit = self.settings.idle_session_timeout_s
            now = time.monotonic()
            for sid, sess in list(self.sessions.items()):
                if not sess.peers and not sess.streams and now - sess.last_activity > limit:
                    log.info("closing idle session %s", sid)
                    await self.close_session(sid)

    # ---- models -----------------------------------------------------------------------

    def avatar_source(self, name: str) -> str | Path | None:
        """Avatar name -> what ``create_renderer`` takes; :class:`UnknownAvatar` if none."""
        if name == DEFAULT_AVATAR:
            return self.settings.avatar
        if not AVATAR_NAME.match(name):
            raise UnknownAvatar(f"invalid avatar name {name!r}")
        path = self.settings.avatars_dir / name
        if not path.is_dir():
            raise UnknownAvatar(f"unknown avatar {name!r}; see GET /v1/avatars")
        return path

    def avatar_names(self) -> list[str]:
        root = self.settings.avatars_dir
        found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        return [DEFAULT_AVATAR, *[n for n in found if AVATAR_NAME.match(n)]]

    async def renderer_pool(self, avatar: str, size: int) -> RendererPool:
        key = (avatar, size)
        if key not in self.renderers:
            source = self.avatar_source(avatar)
            sched = self.require_scheduler()

            def factory() -> Any:
                return self.renderer_factory(source, size)

            pool = await sched.run(RendererPool, factory, sched.workers)
            self.renderers.setdefault(key, pool)
        return self.renderers[key]

    async def motion_model(self, fps: int) -> Any:
        if fps not in self.motion_models:
            model = await self.require_scheduler().run(self.motion_loader, fps)
            self.motion_models.setdefault(fps, model)
        return self.motion_models[fps]

    async def lips(self) -> Any:
        """The renderer's own mouth model (e.g. an Audio2Lip runner), or None."""
        if self.lips_model is None and self.lips_loader is not None:
            self.lips_model = await self.require_scheduler().run(self.lips_loader)
        return self.lips_model

    # ---- sessions ---------------------------------------------------------------------

    async def create_session(self, params: SessionParams) -> Session:
        """Build and admit a session; raises UnknownAvatar, KeyError (emotion),
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
            lip_streamer = await sched.run(_default_lips_streamer, lips)
            right_context = max(right_context, float(lip_streamer.lookahead_s))
        margin = self.settings.render_margin_ms / 1000.0
        delay = output_delay_frames(right_context, margin, params.fps)
        idle = await sched.run(pool.render, zeros())
        render = sched.render_fn(pool)
        streamer = await sched.run(self.streamer_factory, model)
        max_buffered = self.settings.max_buffered_audio_s

        def make_pipeline(clock: Any) -> SessionPipeline:
            return SessionPipeline(
                clock=clock,
                streamer=streamer,
                mouth_names=tuple(model.names),
                mixer=MotionMixer(params.fps, seed=params.seed, emotion=params.emotion),
                render=render,
                max_buffered_s=max_buffered,
                echo_audio=params.input != "mirror",
                lips=lip_streamer,
            )

        async with self._lock:
            session = Session(
                params,
                pipeline_factory=make_pipeline,
                delay_frames=delay,
                idle_image=idle,
                run=sched.run,
                on_cost=lambda c: sched.record_tick(params.size, c),
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

    async def close_session(self, sid: str) -> bool:
        session = self.sessions.pop(sid, None)
        if session is None:
            return False
        await session.close()
        if self.scheduler is not None:
            self.scheduler.release(sid)
        self.metrics.sessions_closed += 1
        return True


def _measure_render(pool: RendererPool) -> float:
    """Seconds per rendered frame at the pool's size (a few frames after one warm-up)."""
    rng = np.random.default_rng(0)
    coeffs = zeros(CALIBRATION_FRAMES)
    coeffs[:, :16] = rng.uniform(0.0, 0.6, (CALIBRATION_FRAMES, 16))
    pool.render(coeffs[0])
    t0 = time.thread_time()
    for c in coeffs:
        pool.render(c)
    return (time.thread_time() - t0) / CALIBRATION_FRAMES


def get_state(request: Any) -> AppState:
    """The :class:`AppState` of the app serving ``request`` (HTTP or WebSocket)."""
    state: AppState = request.app.state.headcast
    return state


def create_app(
    settings: ServerSettings,
    *,
    renderer_factory: RendererFactory | None = None,
    motion_loader: MotionLoader | None = None,
    streamer_factory: Callable[[Any], Any] | None = None,
    lips_loader: LipsLoader | None = None,
    warm_up: bool = True,
) -> FastAPI:
    """The headcast ASGI app for ``settings`` (factories replaceable for tools and tests)."""
    state = AppState(
        settings,
        renderer_factory=renderer_factory,
        motion_loader=motion_loader,
        streamer_factory=streamer_factory,
        lips_loader=lips_loader,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.start()
        if warm_up:
            await state.warm_up()
        else:
            state.ready = True
        try:
            yield
        finally:
            await state.stop()
            render_jobs = getattr(app.state, "render_jobs", None)  # made by server.renders
            if render_jobs is not None:
                await asyncio.to_thread(render_jobs.close)

    app = FastAPI(
        title="headcast",
        version="0.1.0",
        summary="Real-time talking-head streaming: speech in, lip-synced avatar out.",
        lifespan=lifespan,
    )
    app.state.headcast = state
    from server.auth import install as install_auth  # imports this module

    install_auth(app, settings)  # inside CORS, so its 401s are readable cross-origin
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "DELETE", "PATCH", "OPTIONS"],
        allow_headers=["Content-Type", "Authorization"],
        expose_headers=["Location", "Link", "ETag"],
    )
    for name, required in ROUTER_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if required or exc.name != name:
                raise
            continue
        app.include_router(module.router)

    @app.middleware("http")
    async def count_client_errors(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        if 400 <= response.status_code < 500:
            state.metrics.bad_requests += 1
        return response

    return app
