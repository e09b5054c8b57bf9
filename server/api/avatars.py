"""Avatars: list, upload a portrait (enrollment runs as a job with progress), inspect jobs.

``POST /v1/avatars?name=alice`` with the image as the body (or a multipart ``file``)
answers ``202`` with a job; ``GET /v1/avatars/jobs/{id}`` reports ``state``
(queued/running/done/failed), ``progress`` 0..1, a ``message`` and, once done, the
avatar name to pass as ``avatar`` when creating a session. Enrollment needs mediapipe
(an optional extra); without it uploads answer 501 and say so.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from headcast.server.api.bodies import read_upload
from headcast.server.api.openapi import openapi_body, refuse_unknown
from headcast.server.live.avatar_dir import AVATAR_NAME, DEFAULT_AVATAR, NAME_RULE, shown
from headcast.server.state import AppState, get_state

router = APIRouter(prefix="/v1/avatars", tags=["avatars"])
MAX_JOBS = 64  # finished jobs kept for inspection
_ENROLL_POOL_KEY = "enroll_pool"


@dataclass
class EnrollJob:
    id: str
    avatar: str
    state: str = "queued"
    progress: float = 0.0
    message: str = ""
    created: float = 0.0


def _enroll_available() -> str | None:
    """None when enrollment can run, else why not."""
    try:
        from headcast.models.avatar import enroll  # noqa: F401
    except ImportError as exc:
        return f"enrollment is not installed on this server ({exc}); install the 'enroll' extra"
    return None


@router.get("")
async def list_avatars(request: Request) -> list[dict[str, Any]]:
    state = get_state(request)
    return [{"name": n, "builtin": n == DEFAULT_AVATAR} for n in state.avatar_names()]


@router.post(
    "",
    status_code=202,
    openapi_extra=openapi_body(
        ("image/jpeg", "image/png", "image/webp", "multipart/form-data"),
        "the portrait as the raw body, or as the multipart field 'file'",
        {
            400: "empty upload, bad name, no 'file' field or an unknown parameter",
            409: "the name is taken or being enrolled",
            413: "larger than max_upload_bytes, or more pixels than enrollment takes",
            415: "not an image (checked from its header before the job starts)",
            422: "an image too small to hold a face",
            501: "enrollment is not installed",
        },
    ),
)
async def upload_avatar(request: Request, name: str | None = None) -> dict[str, Any]:
    """Enroll a portrait (JPEG/PNG body or multipart ``file``) as avatar ``name``."""
    state = get_state(request)
    refuse_unknown(request.query_params, ("name",))
    name = name or f"avatar-{secrets.token_hex(4)}"
    if name == DEFAULT_AVATAR:
        raise HTTPException(400, f"the name {name!r} is the built-in avatar's; choose another")
    if not AVATAR_NAME.fullmatch(name):
        raise HTTPException(400, f"invalid avatar name {shown(name)}: {NAME_RULE}")
    _check_name_free(state, name)
    limit = state.settings.max_upload_bytes
    image, _ = await read_upload(request, limit)
    if not image:
        raise HTTPException(400, "empty upload: send the portrait image as the body")
    _check_name_free(state, name)  # again: another upload may have taken it meanwhile
    why_not = _enroll_available()
    if why_not is not None:
        raise HTTPException(501, why_not)
    problem = await asyncio.to_thread(_image_problem, bytes(image))
    if problem is not None:
        raise HTTPException(*problem)
    if len(state.jobs) >= MAX_JOBS:
        for jid in [j.id for j in state.jobs.values() if j.state in ("done", "failed")][:8]:
            del state.jobs[jid]
    job = EnrollJob(secrets.token_urlsafe(9), name, created=time.time())
    state.jobs[job.id] = job
    pool = getattr(request.app.state, _ENROLL_POOL_KEY, None)
    if pool is None:  # one enrollment at a time, off the render workers
        pool = ThreadPoolExecutor(1, thread_name_prefix="headcast-enroll")
        setattr(request.app.state, _ENROLL_POOL_KEY, pool)
    loop = asyncio.get_running_loop()
    loop.run_in_executor(pool, _run_job, job, bytes(image), state.settings.avatars_dir / name)
    return {**asdict(job), "url": f"/v1/avatars/jobs/{job.id}"}


def _image_problem(data: bytes) -> tuple[int, str] | None:
    """(status, reason) when ``data`` is not an image enrollment can read, from its
    header alone (cheap): the job would only fail later."""
    import io

    from PIL import Image, UnidentifiedImageError

    from headcast.models.avatar.image_io import MAX_PIXELS, MIN_SIDE

    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
    except UnidentifiedImageError:
        return 415, "the upload is not an image (send a JPEG, PNG or WebP portrait)"
    except (OSError, SyntaxError, ValueError) as exc:
        return 415, f"the upload is not a readable image ({exc})"
    if width * height > MAX_PIXELS:
        return 413, f"{width}x{height} is too large; the limit is {MAX_PIXELS / 1e6:.0f} MP"
    if min(width, height) < MIN_SIDE:
        return 422, f"{width}x{height} is too small; need at least {MIN_SIDE} px a side"
    return None


def _check_name_free(state: AppState, name: str) -> None:
    if (state.settings.avatars_dir / name).exists():
        raise HTTPException(409, f"avatar {name!r} exists")
    if any(j.avatar == name and j.state in ("queued", "running") for j in state.jobs.values()):
        raise HTTPException(409, f"avatar {name!r} is being enrolled already")


def _run_job(job: EnrollJob, image: bytes, out_dir: Any) -> None:
    from headcast.models.avatar.enroll import enroll

    def progress(fraction: float, message: str) -> None:
        job.progress = max(0.0, min(1.0, float(fraction)))
        job.message = message

    job.state = "running"
    try:
        enroll(image, out_dir, progress=progress)
    except Exception as exc:  # the enrollment error text is the user's to read
        job.state = "failed"
        job.message = str(exc) or exc.__class__.__name__
        return
    job.state = "done"
    job.progress = 1.0
    job.message = "enrolled"


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, request: Request) -> dict[str, Any]:
    job = get_state(request).jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"unknown job {job_id!r}")
    return asdict(job)
