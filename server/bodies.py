"""Request bodies read within a size limit: refused (413) before they fill memory."""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException, Request

MAX_CONTROL_BYTES = 64 * 1024  # a control message is a few hundred bytes
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around an upload


def check_declared(request: Request, limit: int, what: str = "upload") -> None:
    """413 when the declared Content-Length already exceeds ``limit``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"{what} larger than {limit} bytes")


async def read_body(request: Request, limit: int, what: str = "upload") -> bytes:
    """The body, read in chunks; 413 as soon as it passes ``limit`` bytes."""
    check_declared(request, limit, what)
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise HTTPException(413, f"{what} larger than {limit} bytes")
    return bytes(data)


async def read_json(request: Request, limit: int = MAX_CONTROL_BYTES) -> Any:
    """A JSON body of at most ``limit`` bytes; 400 for anything that is not JSON."""
    body = await read_body(request, limit, "JSON body")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise HTTPException(400, "body must be JSON") from exc
