"""server/api/bodies.py: request bodies cut off at their limits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest


def test_uploads_are_cut_off_at_the_limit_however_they_are_sent() -> None:
    """Chunked multipart without a length is read and dropped past the limit, and stops
    being read 8 MiB past it; a client that goes away mid-upload is a 400, not a server
    error; a small form parses."""
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
    # read to its end and dropped (the client then reads the 413, not a reset)
    assert err.value.status_code == 413 and taken[0] == 100
    huge, taken = request([b"x" * (1 << 20)] * 40, multipart)
    with pytest.raises(HTTPException) as err:
        asyncio.run(read_upload(huge, 1024))
    assert err.value.status_code == 413 and taken[0] == 9  # stopped 8 MiB past the limit

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


def test_json_bodies_of_body_model_endpoints_stop_at_the_limit() -> None:
    """A chunked JSON body without a length stops being read past the limit and gets a
    413 with a reason; a small one reaches the endpoint whole, in one message; other
    paths and methods pass untouched."""
    from headcast.server.api.bodies import JsonBodyLimit

    reached: list[tuple[bytes, bool]] = []

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        reached.append((message["body"], message["more_body"]))
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    def call(path: str, chunks: list[bytes], method: str = "POST") -> tuple[int, bytes, int]:
        taken = [0]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if taken[0] == len(chunks):
                return {"type": "http.disconnect"}
            taken[0] += 1
            more = taken[0] < len(chunks)
            return {"type": "http.request", "body": chunks[taken[0] - 1], "more_body": more}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": method, "path": path, "headers": []}
        asyncio.run(JsonBodyLimit(endpoint, limit=1000)(scope, receive, send))
        return sent[0]["status"], sent[1]["body"], taken[0]

    status, body, taken = call("/v1/sessions", [b" " * 400] * 50)
    assert status == 413 and b"larger than 1000 bytes" in body and taken == 50  # read, dropped
    assert reached == []
    from headcast.server.api import bodies

    past_drain = (1000 + bodies.DRAIN_BYTES) // 400 + 10
    status, body, taken = call("/v1/sessions", [b" " * 400] * (past_drain + 100))
    assert status == 413 and taken == past_drain - 9  # cut off once DRAIN_BYTES past it
    status, _, _ = call("/v1/sessions/abc/control", [b'{"type":', b' "ping"}'])
    assert status == 201 and reached == [(b'{"type": "ping"}', False)]
    status, _, taken = call("/v1/sessions/abc/audio", [b"x" * 600] * 5)
    assert status == 201 and taken == 1  # an upload route reads its own body
    assert reached[-1] == (b"x" * 600, True)
