"""server/api/bodies.py: request bodies cut off at their limits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest


def test_uploads_are_cut_off_at_the_limit_however_they_are_sent() -> None:
    """Chunked multipart without a length stops being read past the limit; a client that
    goes away mid-upload is a 400, not a server error; a small form parses."""
    from fastapi import HTTPException
    from starlette.requests import ClientDisconnect, Request

    from headcast.server.api.bodies import read_upload

    def request(chunks: list[bytes], kind: bytes, vanish: bool = False) -> tuple[Any, list[int]]:
        taken = [0]

        async def receive() -> dict[str, Any]:
            if taken[0] == len(chunks):
                if vanish:
                    raise ClientDisconnect()
                return {"type": "http.disconnect"}
            taken[0] += 1
            more = taken[0] < len(chunks) or vanish
            return {"type": "http.request", "body": chunks[taken[0] - 1], "more_body": more}

        scope = {"type": "http", "method": "POST", "headers": [(b"content-type", kind)]}
        return Request(scope, receive), taken

    multipart = b"multipart/form-data; boundary=xx"
    big, taken = request([b"x" * 40_000] * 100, multipart)
    with pytest.raises(HTTPException) as err:
        asyncio.run(read_upload(big, 1024))
    assert err.value.status_code == 413 and taken[0] <= 3  # stopped reading early

    gone, _ = request([b"abc"], b"audio/wav", vanish=True)
    with pytest.raises(HTTPException) as err:
        asyncio.run(read_upload(gone, 1024))
    assert err.value.status_code == 400 and "went away" in str(err.value.detail)

    form = (
        b'--xx\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\nRIFFdata\r\n--xx--\r\n"
    )
    small, _ = request([form[:30], form[30:]], multipart)
    assert asyncio.run(read_upload(small, 1024)) == (b"RIFFdata", "a.wav")
