"""LiveKit avatar workers: ``POST /v1/livekit/workers`` puts this server's avatar in a room.

The agent side (``HeadcastAvatarSession``) mints the avatar participant's room token and
posts ``{url, token, room, avatar}``. The server opens a session for it (admitted like
any session: ``503`` + ``Retry-After`` when full) and starts a worker process —
``python -m headcast.client.livekit_avatar`` run by ``livekit_worker_python``, a Python
with ``headcast[livekit]`` (livekit needs protobuf 5, the server's enrollment 4, so they
live in separate environments) — that joins the room and plays the agent's speech
through that session. The worker ending closes the session; ``DELETE`` ends both.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from headcast.server.api.sessions import SessionRequest, open_session
from headcast.server.api.tokens import Claims, mint, signing_secret
from headcast.server.state import AppState, get_state

router = APIRouter(prefix="/v1/livekit/workers", tags=["livekit"])
STOP_GRACE_S = 5.0
STDERR_TAIL = 600  # characters of a failed worker's stderr kept as its reason
WORKER_TOKEN_TTL_S = 24 * 3600.0
KEEP_FINISHED_S = 600.0


class WorkerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=r"^(wss?|https?)://", max_length=2048, description="LiveKit URL")
    token: str = Field(min_length=16, max_length=8192, description="the avatar's room token")
    room: str = Field(min_length=1, max_length=256, description="room name (for listings)")
    avatar: str = "default"
    size: int | None = None


@dataclass
class Worker:
    id: str
    room: str
    session: str
    proc: asyncio.subprocess.Process
    started: float = field(default_factory=time.monotonic)
    state: str = "running"  # running | ended | failed | stopped
    reason: str = ""

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "room": self.room,
            "session": self.session,
            "state": self.state,
            "reason": self.reason,
            "age_s": round(time.monotonic() - self.started, 1),
        }


def _workers(request: Request) -> dict[str, Worker]:
    app_state = request.app.state
    if not hasattr(app_state, "livekit_workers"):
        app_state.livekit_workers = {}
    workers: dict[str, Worker] = app_state.livekit_workers
    return workers


@router.post("", status_code=201)
async def launch(req: WorkerRequest, request: Request) -> dict[str, Any]:
    """Open a session and start a worker that joins the room with it."""
    state = get_state(request)
    python = state.settings.livekit_worker_python
    if python is None or not python.exists():
        raise HTTPException(
            501,
            "LiveKit workers are not set up on this server: set livekit_worker_python to a "
            "Python with headcast[livekit] installed (docs/agents.md)",
        )
    session = await open_session(state, SessionRequest(avatar=req.avatar, size=req.size), request)
    port = request.scope["server"][1]
    cmd = [str(python), "-m", "headcast.client.livekit_avatar", "--livekit-url", req.url]
    cmd += ["--token", req.token, "--headcast", f"http://127.0.0.1:{port}"]
    cmd += ["--session", session.id]
    secret = signing_secret(state.settings)
    if secret is not None:
        claims = Claims(exp=time.time() + WORKER_TOKEN_TTL_S, session=session.id)
        cmd += ["--headcast-token", mint(secret, claims)]
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
    except OSError as exc:
        await state.close_session(session.id)
        raise HTTPException(500, f"cannot start the worker: {exc}") from exc
    worker = Worker(secrets.token_urlsafe(9), req.room, session.id, proc)
    workers = _workers(request)
    for wid, old in list(workers.items()):  # finished workers are listed for a while
        if old.state != "running" and time.monotonic() - old.started > KEEP_FINISHED_S:
            del workers[wid]
    workers[worker.id] = worker
    task = asyncio.create_task(_watch(state, worker))
    state.track_task(task)
    return worker.describe()


async def _watch(state: AppState, worker: Worker) -> None:
    """The worker's end closes its session; a failure keeps stderr's tail as the reason.
    The server stopping (this task cancelled) stops the worker."""
    assert worker.proc.stderr is not None
    try:
        err = await worker.proc.stderr.read()
        code = await worker.proc.wait()
    except asyncio.CancelledError:
        if worker.proc.returncode is None:
            worker.proc.terminate()
        raise
    if worker.state == "running":
        worker.state = "ended" if code == 0 else "failed"
        if code != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            worker.reason = (lines[-1] if lines else f"exit status {code}")[-STDERR_TAIL:]
    await state.close_session(worker.session)


@router.get("")
async def list_workers(request: Request) -> list[dict[str, Any]]:
    return [w.describe() for w in _workers(request).values()]


@router.get("/{wid}")
async def get_worker(wid: str, request: Request) -> dict[str, Any]:
    worker = _workers(request).get(wid)
    if worker is None:
        raise HTTPException(404, f"unknown worker {wid!r}")
    return worker.describe()


@router.delete("/{wid}", status_code=204)
async def stop_worker(wid: str, request: Request) -> Response:
    """Stop the worker (it leaves the room) and close its session."""
    workers = _workers(request)
    worker = workers.pop(wid, None)
    if worker is None:
        raise HTTPException(404, f"unknown worker {wid!r}")
    if worker.proc.returncode is None:
        worker.state = "stopped"
        worker.proc.terminate()
        try:
            await asyncio.wait_for(worker.proc.wait(), STOP_GRACE_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                worker.proc.kill()
    await get_state(request).close_session(worker.session)
    return Response(status_code=204)
