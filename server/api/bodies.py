"""Request bodies read within a size limit: refused (413) before they fill memory."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fastapi import HTTPException, Request
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from headcast.models.audio import AudioError
from headcast.server.api.auth import (
    DRAIN_BYTES,
    ASGIApp,
    Scope,
    Send,
    header,
    read_within,
    refuse,
    replay,
)
from headcast.server.api.origin_guard import JSON_BODIES

T = TypeVar("T")

MAX_CONTROL_BYTES = 64 * 1024  # a control message is a few hundred bytes
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around an upload
#: what an audio upload may be sent as (FFmpeg reads the file, whatever it says)
MEDIA_UPLOAD_TYPES = (
    "audio/wav",
    "audio/mpeg",
    "audio/ogg",
    "audio/flac",
    "video/mp4",
    "application/octet-stream",
    "multipart/form-data",
)


def check_declared(request: Request, limit: int, what: str = "upload") -> None:
    """413 when the declared Content-Length exceeds ``limit`` by more than
    :data:`DRAIN_BYTES` (a smaller excess is read and dropped first, see :func:`read_body`)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + DRAIN_BYTES:
        raise HTTPException(413, f"{what} larger than {limit} bytes")


async def read_body(request: Request, limit: int, what: str = "upload") -> bytes:
    """The body, read in chunks; 413 once it passes ``limit`` bytes, 400 when the client
    goes away before sending all of it. Past the limit the rest is read and dropped (up
    to :data:`DRAIN_BYTES` more), so the client reads the 413 instead of a reset
    connection; memory holds at most ``limit`` bytes."""
    check_declared(request, limit, what)
    data = bytearray()
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit + DRAIN_BYTES:
                break
            if size <= limit:
                data += chunk
    except ClientDisconnect as exc:
        raise HTTPException(400, f"the client went away before the whole {what} came") from exc
    if size > limit:
        raise HTTPException(413, f"{what} larger than {limit} bytes")
    return bytes(data)


async def read_json(request: Request, limit: int = MAX_CONTROL_BYTES) -> Any:
    """A JSON body of at most ``limit`` bytes; 400 for anything that is not JSON."""
    body = await read_body(request, limit, "JSON body")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise HTTPException(400, "body must be JSON") from exc


async def read_upload(request: Request, limit: int) -> tuple[bytes, str]:
    """(file bytes, its file name or "") from the raw body or the multipart field ``file``;
    413 past ``limit`` bytes, 400 for a multipart body without a ``file`` field."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await read_body(request, limit), ""
    # The whole body within the limit first (a chunked upload declares no length), then
    # the form parsed from it.
    body = await read_body(request, limit + MULTIPART_OVERHEAD)
    form = await Request(request.scope, replay(body)).form()
    try:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPException(400, "multipart upload needs a 'file' field")
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise HTTPException(413, f"upload larger than {limit} bytes")
        return data, upload.filename or ""
    finally:
        await form.close()  # the parts spooled to temporary files


def on_upload_file(data: bytes, suffix: str, fn: Callable[[Path], T]) -> T:
    """``fn(path)`` on the upload written to a temporary file (removed after); an
    :class:`AudioError` from it names "the upload", not the server's temporary file."""
    with tempfile.NamedTemporaryFile(suffix=suffix) as f:
        f.write(data)
        f.flush()
        return on_stored_upload(Path(f.name), fn)


def on_stored_upload(path: Path, fn: Callable[[Path], T]) -> T:
    """``fn(path)`` on an upload the server stored at ``path``; an :class:`AudioError`
    from it names "the upload", not the server's file."""
    try:
        return fn(path)
    except AudioError as exc:
        raise type(exc)(str(exc).replace(str(path), "the upload")) from exc


class JsonBodyLimit:
    """ASGI middleware: the JSON bodies of the endpoints that take one (sessions, tokens,
    LiveKit workers, control, say) are read here up to :data:`MAX_CONTROL_BYTES` and
    handed on whole; a larger one is refused with 413 without filling memory (the
    endpoints that parse a body model would otherwise keep any size): read and dropped
    up to :data:`DRAIN_BYTES` more, cut off past it."""

    def __init__(self, app: ASGIApp, limit: int = MAX_CONTROL_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            scope["type"] == "http"
            and scope.get("method") == "POST"
            and JSON_BODIES.fullmatch(scope.get("path", ""))
        ):
            await self.app(scope, receive, send)
            return
        reason = f"JSON body larger than {self.limit} bytes"
        declared = header(scope, b"content-length") or ""
        if declared.isdigit() and int(declared) > self.limit + DRAIN_BYTES:
            await refuse(scope, send, reason, 413, challenge=False)
            return
        body = await read_within(receive, self.limit)
        if body is None:
            await refuse(scope, send, reason, 413, challenge=False)
            return
        await self.app(scope, replay(body, receive), send)
