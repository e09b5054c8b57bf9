"""The FastAPI application: state on the app, the routers of :mod:`server.api`.

``create_app(settings)`` builds everything; nothing lives in module globals. Routers
are the ``router`` of each module in :mod:`server.api`, listed in :data:`ROUTERS`.
The state itself is :class:`server.state.AppState`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from headcast.server.api import (
    avatars,
    health,
    livekit,
    renders,
    sessions,
    static,
    tokens,
    voices,
    whep,
    ws,
)
from headcast.server.api.auth import install as install_auth
from headcast.server.api.bodies import JsonBodyLimit
from headcast.server.api.client_address import ClientAddress
from headcast.server.api.methods import MethodsAllowed
from headcast.server.api.origin_guard import OriginGuard
from headcast.server.live.loaders import LipsLoader, MotionLoader, RendererFactory
from headcast.server.settings import ServerSettings
from headcast.server.state import AppState

#: Every router of the API, in the order they are included; add a line to add one.
ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    sessions.router,
    whep.router,
    ws.router,
    avatars.router,
    renders.router,
    tokens.router,
    voices.router,
    livekit.router,
    static.router,
)


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
            render_jobs = getattr(app.state, "render_jobs", None)  # made by server.api.renders
            if render_jobs is not None:
                await asyncio.to_thread(render_jobs.close)

    app = FastAPI(
        title="headcast",
        version="0.1.0",
        summary="Real-time talking-head streaming: speech in, lip-synced avatar out.",
        lifespan=lifespan,
    )
    app.state.headcast = state

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 with where and what, leaving out the input itself: it may hold NaN or
        infinity, which JSON cannot carry."""
        errors = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    # Outermost first: client address -> CORS -> origin guard -> auth -> JSON body limit ->
    # Allow -> routes (the last middleware added is the outermost). Refusals inside CORS
    # are readable cross-origin; throttling sees the address a trusted proxy forwarded.
    app.add_middleware(MethodsAllowed, router=app.router)
    app.add_middleware(JsonBodyLimit)
    install_auth(app, settings)
    app.add_middleware(OriginGuard, allowed_origins=settings.cors_origins)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "DELETE", "PATCH", "OPTIONS"],
        allow_headers=["Content-Type", "Authorization"],
        expose_headers=["Location", "Link", "ETag"],
    )
    app.add_middleware(ClientAddress, trusted_proxies=settings.trusted_proxies)
    for router in ROUTERS:
        app.include_router(router)

    @app.middleware("http")
    async def count_client_errors(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        if 400 <= response.status_code < 500:
            state.metrics.bad_requests += 1
        return response

    return app
