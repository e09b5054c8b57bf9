"""HTTP API for live sessions: create, list, inspect, close, upload audio, control."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection

from headcast.models.audio import SUPPORTED_FPS, AudioError, AudioTooLong
from headcast.models.avatar.errors import AvatarError
from headcast.server.api.auth import token_grant, token_owner
from headcast.server.api.bodies import MEDIA_UPLOAD_TYPES, on_upload_file, read_json, read_upload
from headcast.server.api.openapi import openapi_body
from headcast.server.live.admission import AdmissionError
from headcast.server.live.avatar_dir import InvalidAvatarName, UnknownAvatar
from headcast.server.live.clock import SAMPLE_RATE
from headcast.server.live.control import ControlError, apply_control
from headcast.server.live.session import InputMode, Session, SessionParams
from headcast.server.live.speaker import SayError
from headcast.server.state import AppState, UnsupportedSession, get_state

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])
RETRY_AFTER_S = 5
# Live frame rates: the motion model's, up to what browsers play smoothly (30).
LIVE_FPS = tuple(f for f in SUPPORTED_FPS if f <= 30)


class SessionRequest(BaseModel):
    """Body of ``POST /v1/sessions``; every field optional."""

    model_config = ConfigDict(extra="forbid", strict=True)  # "512" is not a number

    avatar: str = Field(default="default", max_length=64)
    emotion: str = Field(default="neutral", max_length=64)
    fps: int | None = Field(default=None, description="frames per second: 20, 25 or 30")
    size: int | None = Field(default=None, description="frame side in pixels; one of allowed_sizes")
    input: InputMode = "websocket"
    seed: int | None = Field(
        default=None, ge=0, description="seed of the idle motion (blinks, drift)"
    )


def session_links(session: Session) -> dict[str, Any]:
    base = f"/v1/sessions/{session.id}"
    return {"whep": f"{base}/whep", "ws": f"{base}/ws", "audio": f"{base}/audio"}


def find_session(state: AppState, sid: str, conn: HTTPConnection) -> Session:
    """Session ``sid`` for a request or WebSocket: 404 if unknown, 403 if a session
    token other than the one that opened it asks (the API key may use any)."""
    session = state.sessions.get(sid)
    if session is None:
        raise HTTPException(404, f"unknown session {sid!r}")
    if not owned_by(session, conn):
        raise HTTPException(403, f"session {sid} was not opened with this token")
    return session


def owned_by(session: Session, conn: HTTPConnection) -> bool:
    """The API key, the token that opened it, or a token minted for it may use it."""
    owner = token_owner(conn)
    return owner is None or session.owner == owner or token_grant(conn) == session.id


async def open_session(state: AppState, req: SessionRequest, request: Request) -> Session:
    """Validate and create for ``request``'s token; HTTP errors with reasons (400/404/503)."""
    s = state.settings
    size = s.default_size if req.size is None else req.size
    fps = s.default_fps if req.fps is None else req.fps
    if size not in s.allowed_sizes:
        raise HTTPException(400, f"size {size} not allowed; choose one of {list(s.allowed_sizes)}")
    if fps not in LIVE_FPS:
        raise HTTPException(400, f"fps {fps} not available live; choose one of {list(LIVE_FPS)}")
    params = SessionParams(req.avatar, size, fps, req.emotion, req.input, req.seed)
    try:
        session = await state.create_session(params, owner=token_owner(request))
    except InvalidAvatarName as exc:
        raise HTTPException(400, str(exc)) from exc
    except UnknownAvatar as exc:
        raise HTTPException(404, str(exc)) from exc
    except AvatarError as exc:  # a pack on disk that does not load
        reason = str(exc).replace(str(s.avatars_dir), "avatars")
        raise HTTPException(422, f"avatar {req.avatar!r} cannot be used: {reason}") from exc
    except KeyError as exc:
        raise HTTPException(400, str(exc.args[0])) from exc
    except UnsupportedSession as exc:
        raise HTTPException(400, str(exc)) from exc
    except AdmissionError as exc:
        state.metrics.sessions_refused += 1
        raise HTTPException(503, str(exc), headers={"Retry-After": str(RETRY_AFTER_S)}) from exc
    return session


@router.post("", status_code=201)
async def create_session(
    request: Request, response: Response, req: SessionRequest | None = None
) -> dict[str, Any]:
    """Create a session (every field optional, the body too); returns its id, WHEP and
    WebSocket URLs and output delay."""
    state = get_state(request)
    session = await open_session(state, req or SessionRequest(), request)
    response.headers["Location"] = f"/v1/sessions/{session.id}"
    return {**session.stats(), **session_links(session)}


@router.get("")
async def list_sessions(request: Request) -> list[dict[str, Any]]:
    return [s.stats() for s in get_state(request).sessions.values()]


@router.get("/{sid}")
async def get_session(sid: str, request: Request) -> dict[str, Any]:
    session = find_session(get_state(request), sid, request)
    return {**session.stats(), **session_links(session)}


@router.delete("/{sid}", status_code=204)
async def delete_session(sid: str, request: Request) -> Response:
    state = get_state(request)
    find_session(state, sid, request)
    if not await state.close_session(sid, deleted=True):  # closed meanwhile
        raise HTTPException(404, f"unknown session {sid!r}")
    return Response(status_code=204)


@router.post("/{sid}/close", status_code=204)
async def close_session_beacon(sid: str, request: Request) -> Response:
    """``DELETE /v1/sessions/{id}`` for a page being closed: ``navigator.sendBeacon``
    can only POST, and only a credential in the URL (``?token=``)."""
    state = get_state(request)
    find_session(state, sid, request)
    await state.close_session(sid, deleted=True)
    return Response(status_code=204)


@router.post(
    "/{sid}/control",
    openapi_extra=openapi_body(
        ("application/json",),
        'a control message: {"type": "interrupt" | "emotion" | "pose" | "ping", ...}',
        {
            400: "not JSON or not a known control message",
            404: "unknown session",
            413: "body over 64 KiB",
        },
        binary=False,
    ),
)
async def control(sid: str, request: Request) -> dict[str, Any]:
    """The WebSocket's control messages over HTTP (interrupt, emotion, pose)."""
    state = get_state(request)
    session = find_session(state, sid, request)
    message = await read_json(request)
    try:
        reply = await apply_control(session, message)
    except ControlError as exc:
        raise HTTPException(400, str(exc)) from exc
    if isinstance(message, dict) and message.get("type") == "interrupt":
        state.metrics.interrupts += 1
    return reply or {"type": "ok"}


SAY_KEYS = frozenset({"type", "text", "voice"})


async def say_text(state: AppState, session: Session, message: Any) -> dict[str, Any]:
    """A ``say`` message ({"text", "voice"?}) queued on ``session``; :class:`SayError`."""
    if not isinstance(message, dict):
        raise SayError(400, 'say takes a JSON object: {"text": "...", "voice": "..."}')
    if unknown := sorted(set(message) - SAY_KEYS):
        raise SayError(400, f"unknown field(s) {', '.join(unknown)}; say takes text and voice")
    return await state.speaker.say(session, message.get("text"), message.get("voice"))


@router.post(
    "/{sid}/say",
    status_code=202,
    openapi_extra=openapi_body(
        ("application/json",),
        '{"text": "what to say", "voice": "slt"} (voice optional; GET /v1/voices lists them)',
        {
            400: "no text, unknown field, or unknown voice (the reason lists the voices)",
            404: "unknown session",
            409: "interrupted while the text was synthesised (nothing queued)",
            413: "text longer than max_say_chars",
            502: "the text-to-speech engine or endpoint failed",
        },
        binary=False,
    ),
)
async def say(sid: str, request: Request) -> dict[str, Any]:
    """Say typed text: synthesised sentence by sentence, the first one queued before this
    answers (the rest follows while it plays)."""
    state = get_state(request)
    session = find_session(state, sid, request)
    message = await read_json(request)
    try:
        return await say_text(state, session, message)
    except SayError as exc:
        raise HTTPException(exc.status, exc.reason) from exc


def _decode_upload(data: bytes, suffix: str, max_seconds: float) -> Any:
    from headcast.models.audio.features import load_audio

    return on_upload_file(data, suffix, lambda p: load_audio(p, max_seconds=max_seconds)[0])


@router.post(
    "/{sid}/audio",
    status_code=202,
    openapi_extra=openapi_body(
        MEDIA_UPLOAD_TYPES,
        "an audio file (any format FFmpeg reads) as the raw body, or the multipart field 'file'",
        {
            400: "empty body or no samples",
            409: "interrupted while the upload was decoded (nothing queued)",
            404: "unknown session",
            413: "larger than max_upload_bytes, or longer than max_upload_audio_s",
            415: "not decodable audio",
        },
    ),
)
async def upload_audio(sid: str, request: Request) -> dict[str, Any]:
    """Queue an audio file (WAV, MP3, OGG, ... as the raw body) for the session to say."""
    state = get_state(request)
    session = find_session(state, sid, request)
    data, filename = await read_upload(request, state.settings.max_upload_bytes)
    if not data:
        raise HTTPException(400, "empty upload: send the audio file as the request body")
    kind = request.headers.get("content-type", "")
    suffix = {"audio/wav": ".wav", "audio/x-wav": ".wav", "audio/mpeg": ".mp3"}.get(kind, "")
    named = Path(filename).suffix.lower()
    if named[1:].isalnum() and named.isascii() and len(named) <= 6:
        suffix = named
    generation = session.interrupts
    try:
        pcm = await state.require_scheduler().run(
            _decode_upload, data, suffix, state.settings.max_upload_audio_s
        )
    except AudioTooLong as exc:
        raise HTTPException(413, f"{exc} (max_upload_audio_s)") from exc
    except AudioError as exc:
        raise HTTPException(415, f"cannot decode audio: {exc}") from exc
    if len(pcm) == 0:
        raise HTTPException(400, "the audio is empty (zero samples)")
    if session.closed:
        raise HTTPException(404, f"session {sid} closed while the upload was decoded")
    if session.interrupts != generation:  # a barge-in came first: this speech is stale
        raise HTTPException(409, "interrupted while the upload was decoded; nothing was queued")
    session.push(pcm)
    return {"duration_ms": round(len(pcm) * 1000.0 / SAMPLE_RATE, 1), "queued": True}
