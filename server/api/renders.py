"""Offline renders over HTTP: upload speech, get a job, poll it, download the MP4.

``POST /v1/renders?avatar=default&size=512&fps=25&emotion=neutral&pose=natural&seed=7``
with the audio as the body (or a multipart ``file``) answers ``202`` with the job.
``GET /v1/renders/{id}`` reports ``status`` (queued/running/done/failed/cancelled),
``progress`` 0..1 and an ETA; ``GET /v1/renders/{id}/video`` downloads the MP4 once done;
``DELETE /v1/renders/{id}`` cancels and removes it. A job runs on its own worker thread,
not in the request, so it carries on when the client disconnects; finished jobs and
their files are removed :data:`RETENTION_S` after they end.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse

from headcast.models.audio import AudioError, AudioTooLong
from headcast.models.audio.decode import is_empty
from headcast.models.offline import RenderContext, RenderError, RenderOptions, render_file
from headcast.models.sizes import FRAME_SIZES
from headcast.server.api.bodies import MEDIA_UPLOAD_TYPES, on_stored_upload, read_upload
from headcast.server.api.openapi import openapi_body, query
from headcast.server.api.render_options import render_options
from headcast.server.live.avatar_dir import InvalidAvatarName, UnknownAvatar
from headcast.server.state import get_state

router = APIRouter(prefix="/v1/renders", tags=["renders"])

RETENTION_S = 3600.0  # finished jobs (and their videos) are kept this long (seconds)
SWEEP_EVERY_S = 30.0  # how often expired jobs are looked for (seconds)
MAX_PENDING = 32  # queued + running jobs accepted before answering 503
JOB_WORKERS = 1  # renders at once; each uses RENDER_THREADS threads
RENDER_THREADS = 1  # leaves the other cores to live sessions
_STORE_KEY = "render_jobs"
_STORE_LOCK = threading.Lock()


class _Cancelled(Exception):
    pass


@dataclass
class RenderJob:
    id: str
    avatar: str
    options: RenderOptions
    folder: Path
    status: str = "queued"
    frames_done: int = 0
    frames: int = 0
    error: str = ""
    created: float = field(default_factory=time.time)
    started: float = 0.0
    finished: float = 0.0
    first_frame: tuple[float, int] | None = None  # (time, frames done) of the first report
    audio_s: float = 0.0
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def video(self) -> Path:
        return self.folder / "video.mp4"

    def public(self, retention_s: float) -> dict[str, Any]:
        """The job as the API reports it (times are Unix seconds)."""
        progress = 1.0 if self.status == "done" else self.frames_done / max(self.frames, 1)
        eta = None
        if self.status == "running" and self.first_frame is not None:
            # the frame rate since frames began: decoding and motion come before them
            t0, done0 = self.first_frame
            if self.frames_done > done0:
                rate = (self.frames_done - done0) / max(time.time() - t0, 1e-6)
                eta = round((self.frames - self.frames_done) / rate, 2)
        opts = self.options
        return {
            "id": self.id,
            "status": self.status,
            "progress": round(progress, 4),
            "frames_done": self.frames_done,
            "frames": self.frames,
            "eta_s": eta,
            "error": self.error or None,
            "avatar": self.avatar,
            "size": opts.size,
            "fps": opts.fps,
            "emotion": opts.emotion,
            "pose": opts.pose,
            "seed": opts.seed,
            "audio_s": round(self.audio_s, 3),
            "created": self.created,
            "finished": self.finished or None,
            "expires": (self.finished + retention_s) if self.finished else None,
            "url": f"/v1/renders/{self.id}",
            "video_url": f"/v1/renders/{self.id}/video" if self.status == "done" else None,
        }


class RenderJobs:
    """The app's render jobs: a worker pool, the files under ``root``, retention sweeps."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        retention_s: float = RETENTION_S,
        sweep_every_s: float = SWEEP_EVERY_S,
        motion_model: Path | None = None,
        provider: Any = "auto",
        workers: int = JOB_WORKERS,
    ) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="headcast-renders-")) if root is None else root
        self.root.mkdir(parents=True, exist_ok=True)
        self.retention_s = retention_s
        self.motion_model = motion_model
        self.provider = provider
        self._jobs: dict[str, RenderJob] = {}
        self._contexts: dict[str, RenderContext] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="headcast-render-job")
        self._stop = threading.Event()
        self._sweeper = threading.Thread(
            target=self._sweep_loop,
            args=(sweep_every_s,),
            name="headcast-render-sweep",
            daemon=True,
        )
        self._sweeper.start()

    # ---- jobs ---------------------------------------------------------------------

    def pending(self) -> int:
        with self._lock:
            return sum(j.status in ("queued", "running") for j in self._jobs.values())

    def store(self, audio: bytes, suffix: str) -> Path:
        """Write an upload into a new job folder -> its path (blocking file I/O: call it
        off the event loop). :meth:`submit` queues it; :meth:`discard` drops it."""
        folder = self.root / secrets.token_urlsafe(9)
        folder.mkdir()
        speech = folder / f"input{suffix}"
        speech.write_bytes(audio)
        return speech

    @staticmethod
    def discard(speech: Path) -> None:
        shutil.rmtree(speech.parent, ignore_errors=True)

    def submit(self, speech: Path, avatar: str, source: Any, options: RenderOptions) -> RenderJob:
        """Queue the render of a stored upload (:meth:`store`); returns the job at once."""
        folder = speech.parent
        job = RenderJob(folder.name, avatar, options, folder)
        with self._lock:
            self._jobs[job.id] = job
            ctx = self._contexts.get(avatar)
            if ctx is None:
                ctx = RenderContext(source, motion_model=self.motion_model, provider=self.provider)
                self._contexts[avatar] = ctx
        self._pool.submit(self._run, job, speech, ctx)
        return job

    def _run(self, job: RenderJob, speech: Path, ctx: RenderContext) -> None:
        if job.cancel.is_set():
            return
        job.started = time.time()
        job.status = "running"

        def progress(done: int, total: int) -> None:
            job.frames_done, job.frames = done, total
            if job.first_frame is None:
                job.first_frame = (time.time(), done)
            if job.cancel.is_set():
                raise _Cancelled

        status = "failed"
        try:
            result = render_file(speech, job.video, job.options, context=ctx, progress=progress)
            job.audio_s, job.frames = result.audio_s, result.frames
            status = "done"
        except _Cancelled:
            status = "cancelled"
        except RenderError as exc:
            job.error = str(exc).replace(str(speech), "upload")
        except Exception as exc:  # reported on the job; the server carries on
            job.error = f"{exc.__class__.__name__}: {exc}"
        finally:
            speech.unlink(missing_ok=True)
            job.finished = time.time()
            # last: a poll that sees the job ended sees everything about its end
            job.status = status

    def get(self, job_id: str) -> RenderJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def list(self) -> list[RenderJob]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created)

    def remove(self, job_id: str) -> bool:
        """Cancel the job if it still runs and delete it with its files."""
        with self._lock:
            job = self._jobs.pop(job_id, None)
        if job is None:
            return False
        job.cancel.set()
        if job.status == "queued":
            job.status = "cancelled"
        shutil.rmtree(job.folder, ignore_errors=True)
        return True

    def sweep(self, now: float | None = None) -> int:
        """Remove jobs that finished more than ``retention_s`` ago; how many went."""
        now = time.time() if now is None else now
        with self._lock:
            old = [
                j.id
                for j in self._jobs.values()
                if j.finished and now - j.finished > self.retention_s
            ]
        for job_id in old:
            self.remove(job_id)
        return len(old)

    def _sweep_loop(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self.sweep()

    def close(self) -> None:
        """Cancel everything, stop the threads and delete the files."""
        self._stop.set()
        for job in self.list():
            job.cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._sweeper.join(timeout=5.0)
        shutil.rmtree(self.root, ignore_errors=True)


def get_jobs(request: Request) -> RenderJobs:
    """The app's :class:`RenderJobs`, made on first use."""
    app_state = request.app.state
    with _STORE_LOCK:
        store: RenderJobs | None = getattr(app_state, _STORE_KEY, None)
        if store is None:
            settings = get_state(request).settings
            store = RenderJobs(motion_model=settings.motion_model, provider=settings.provider)
            setattr(app_state, _STORE_KEY, store)
    return store


@router.post(
    "",
    status_code=202,
    openapi_extra=openapi_body(
        MEDIA_UPLOAD_TYPES,
        "the speech (any audio or video file FFmpeg reads) as the raw body, or as the "
        "multipart field 'file'",
        {
            400: "bad parameter or empty upload",
            404: "unknown avatar",
            413: "larger than max_upload_bytes, or longer than max_render_audio_s",
            415: "no decodable audio stream",
            503: "too many renders queued",
        },
        parameters=[
            query("avatar", "string", "avatar name (default: the built-in one)"),
            query(
                "size",
                "string",
                f"{', '.join(map(str, FRAME_SIZES))} or full",
                enum=[*map(str, FRAME_SIZES), "full"],
            ),
            query("fps", "integer", "25 or 30", enum=[25, 30]),
            query(
                "emotion",
                "string",
                "emotion preset (configs/emotions.yaml), or a JSON timeline "
                '[{"time": s, "emotion": name, "transition": s}, ...]',
            ),
            query("pose", "string", "natural or still", enum=["natural", "still"]),
            query("seed", "integer", "idle-motion seed (default: from the audio)", minimum=0),
            query("filename", "string", "the upload's name (its extension helps decoding)"),
        ],
    ),
)
async def create_render(request: Request, response: Response) -> dict[str, Any]:
    """Queue a render of the uploaded speech (raw body or multipart ``file``)."""
    state = get_state(request)
    params = dict(request.query_params)
    options = render_options(params, RENDER_THREADS, state.settings.max_render_audio_s)
    avatar = params.get("avatar", "default")
    try:
        source = state.avatar_source(avatar)
    except InvalidAvatarName as exc:
        raise HTTPException(400, str(exc)) from exc
    except UnknownAvatar as exc:
        raise HTTPException(404, str(exc)) from exc
    limit = state.settings.max_upload_bytes
    audio, uploaded_name = await read_upload(request, limit)
    filename = uploaded_name or params.get("filename", "")
    if not audio:
        raise HTTPException(400, "empty upload: send the speech audio as the body")
    jobs = get_jobs(request)
    if jobs.pending() >= MAX_PENDING:
        raise HTTPException(503, "too many renders queued; try again later")
    suffix = Path(filename).suffix.lower()
    suffix = suffix if suffix.isascii() and suffix[1:].isalnum() and len(suffix) <= 6 else ".bin"
    # Stored once, off the event loop, then refused now rather than as a failed job later:
    # no audio stream, unreadable, too long by its header or packets, no samples at all
    # (only its first chunk is decoded here).
    max_s = state.settings.max_render_audio_s
    speech = await asyncio.to_thread(jobs.store, audio, suffix)
    try:
        empty = await asyncio.to_thread(on_stored_upload, speech, lambda p: is_empty(p, max_s))
    except AudioError as exc:
        jobs.discard(speech)
        if isinstance(exc, AudioTooLong):
            raise HTTPException(413, f"{exc} (max_render_audio_s)") from exc
        raise HTTPException(415, f"cannot decode audio: {exc}") from exc
    if empty:
        jobs.discard(speech)
        raise HTTPException(400, "the audio is empty (zero samples)")
    job = jobs.submit(speech, avatar, source, options)
    response.headers["Location"] = f"/v1/renders/{job.id}"
    return job.public(jobs.retention_s)


@router.get("")
async def list_renders(request: Request) -> list[dict[str, Any]]:
    jobs = get_jobs(request)
    return [j.public(jobs.retention_s) for j in jobs.list()]


def _find(request: Request, job_id: str) -> tuple[RenderJobs, RenderJob]:
    jobs = get_jobs(request)
    job = jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"unknown render {job_id!r} (finished renders expire)")
    return jobs, job


@router.get("/{job_id}")
async def get_render(job_id: str, request: Request) -> dict[str, Any]:
    jobs, job = _find(request, job_id)
    return job.public(jobs.retention_s)


@router.get("/{job_id}/video")
async def get_video(job_id: str, request: Request) -> FileResponse:
    _, job = _find(request, job_id)
    if job.status != "done":
        raise HTTPException(409, f"render {job_id} is {job.status}, not done")
    return FileResponse(job.video, media_type="video/mp4", filename=f"{job_id}.mp4")


@router.delete("/{job_id}", status_code=204)
async def delete_render(job_id: str, request: Request) -> Response:
    if not get_jobs(request).remove(job_id):
        raise HTTPException(404, f"unknown render {job_id!r}")
    return Response(status_code=204)
